/**
 * The program CodeBox runs in the guest (`python3 -c DRIVER`) as its stateful interpreter.
 *
 * Protocol: one JSON object per line. The host writes `{"type": "run", "code", "stale"}` on the
 * process's stdin; the driver answers on the process's stdout with `ready` (once), then per run
 * any number of `stdout` / `stderr` (`text`) and `display` (`data`, a MIME bundle) frames and one
 * `done` (`value?`, `error?`).
 *
 * The user's code never writes to the reply channel by accident: before anything runs the driver
 * keeps stdin, stdout and stderr on private close-on-exec descriptors, puts /dev/null on fd 0 and
 * pipes on fds 1 and 2 (re-established before every run, so code that closes or redirects them
 * only spoils its own run), and a thread forwards those pipes as frames. A print, `os.write(1)`,
 * a subprocess or a C extension writing to fd 1 therefore arrives as output text, never as a
 * frame. (Code that runs in this process can always find the private descriptor on purpose; the
 * host checks every frame and restarts the interpreter on anything malformed.)
 */
export const DRIVER = String.raw`
import ast, builtins, codecs, faulthandler, fcntl, json, linecache, os, select, signal, sys, threading, traceback, types
from importlib import invalidate_caches
from site import getsitepackages  # the driver's own references: the user's code may rebind site's

def private(fd):
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)

PID = os.getpid()
REQUESTS = os.fdopen(private(0), "rb")
REPLIES = private(1)
CRASH = os.fdopen(private(2), "w")
faulthandler.enable(file=CRASH)  # a segfault's traceback goes to the exec's stderr
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.close(null)

lock = threading.Lock()
def send(frame):
    data = memoryview((json.dumps(frame) + "\n").encode())
    with lock:
        while data:
            data = data[os.write(REPLIES, data):]

out_r, out_w = os.pipe()
err_r, err_w = os.pipe()
wake_r, wake_w = os.pipe()
for fd in (out_r, err_r, wake_r):
    os.set_blocking(fd, False)
streams = {out_r: "stdout", err_r: "stderr"}
decoders = {fd: codecs.getincrementaldecoder("utf-8")("replace") for fd in streams}
drained = threading.Event()

def pump(fd):
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        text = decoders[fd].decode(chunk)
        if text:
            send({"type": streams[fd], "text": text})
        if not chunk:
            return

def forward():
    while True:
        ready = select.select([out_r, err_r, wake_r], [], [])[0]
        for fd in ready:
            if fd == wake_r:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
                pump(out_r)
                pump(err_r)
                drained.set()
            else:
                pump(fd)

threading.Thread(target=forward, daemon=True).start()

def drain():
    # Everything written to the pipes so far is in the kernel's buffers: the forwarder, the only
    # reader, sends it all before it answers.
    drained.clear()
    os.write(wake_w, b"x")
    drained.wait()

def text_stream(fd):
    return open(fd, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)

def reset_stdio():
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, "__" + name + "__", None)
        try:
            usable = stream.fileno() == fd and not stream.closed
        except Exception:
            usable = False  # replaced by the user's code with something else, or closed
        if not usable:
            stream = text_stream(fd)
            setattr(sys, "__" + name + "__", stream)
        setattr(sys, name, stream)

def flush_stdio():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass

# An interrupt that arrives before the cell's code runs (the host's timer is already going while
# the driver reads and prepares the cell) is held and raised as the code starts. One meant for the
# previous cell that arrived after it ended is dropped: the host's next request says "stale".
running = False
pending = False
def on_sigint(signum, frame):
    global pending
    if running:
        raise KeyboardInterrupt
    pending = True

MIME = (("html", "_repr_html_"), ("markdown", "_repr_markdown_"), ("svg", "_repr_svg_"),
        ("png", "_repr_png_"), ("jpeg", "_repr_jpeg_"), ("json", "_repr_json_"))

def bundle(obj):
    data = {"text": repr(obj)}
    if isinstance(obj, type):
        return data
    for key, method in MIME:
        try:
            fn = getattr(obj, method, None)
            value = fn() if callable(fn) else None
            if isinstance(value, tuple):
                value = value[0]  # (data, metadata), as IPython allows
            if value is None:
                continue
            if key in ("png", "jpeg"):
                value = codecs.decode(codecs.encode(value, "base64"), "ascii").replace("\n", "") if isinstance(value, bytes) else str(value)
            elif key == "json":
                json.dumps(value)
            else:
                value = str(value)
            data[key] = value
        except Exception:
            pass  # a broken _repr_*_ loses that MIME type only, as in IPython
    return data

def display(*objs):
    for obj in objs:
        send({"type": "display", "data": bundle(obj)})

main = types.ModuleType("__main__")
main.__builtins__ = builtins
main.display = display
sys.modules["__main__"] = main
namespace = main.__dict__

def user_traceback(error):
    tb = error.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell-"):
        tb = tb.tb_next
    if isinstance(error, SyntaxError) or tb is None:
        return "".join(traceback.format_exception_only(type(error), error))
    return "".join(traceback.format_exception(type(error), error, tb))

def refresh_imports():
    # Packages installed since the last run (pip in another process) become importable.
    for path in getsitepackages():
        if path not in sys.path and os.path.isdir(path):
            sys.path.append(path)
    invalidate_caches()

def run(code, cell, stale):
    global running, pending
    if stale:
        pending = False
    filename = "<cell-%d>" % cell
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    reply = {"type": "done"}
    try:
        # Inside the try: what the user's code did to sys or site fails this cell, not the driver.
        reset_stdio()
        refresh_imports()
        signal.signal(signal.SIGINT, on_sigint)
        tree = ast.parse(code, filename, "exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        code_object = compile(tree, filename, "exec")
        running = True
        if pending:
            pending = False
            raise KeyboardInterrupt
        exec(code_object, namespace)
        value = eval(compile(ast.Expression(last.value), filename, "eval"), namespace) if last else None
        running = False
        if value is not None:
            reply["value"] = bundle(value)
    except BaseException as error:
        running = False
        if os.getpid() != PID:
            os._exit(0)  # a fork of the user's code that finished its cell: not the interpreter
        reply["error"] = {"name": type(error).__name__, "value": str(error), "traceback": user_traceback(error)}
    if os.getpid() != PID:
        os._exit(0)
    flush_stdio()
    drain()
    send(reply)

signal.signal(signal.SIGINT, on_sigint)
send({"type": "ready", "python": sys.version.split()[0]})
cell = 0
for line in REQUESTS:
    try:
        request = json.loads(line)
    except ValueError:
        os._exit(70)
    cell += 1
    run(request["code"], cell, request.get("stale", False))
os._exit(0)
`
