/**
 * A guest agent that runs no guest: it speaks the real agent protocol (@boxlite/agent-protocol,
 * PROTOCOL.md) on one end of a byte stream, in this process, with a tiny deterministic command
 * set. What it answers is what the host side (the supervisor's AgentMux, AgentConnection)
 * relies on: the handshake, CONFIGURE, exec streams with the flow-control windows, signals,
 * PING, METRICS, FREEZE/THAW and SHUTDOWN.
 *
 * Commands (argv[0], any directory): `echo ARGS` (stdout), `echo-stderr ARGS` (stderr), `cat`
 * (stdin to stdout until STDIN_CLOSE), `env` (the request's env, `K=V` lines), `exit N`,
 * `sleep MS` (milliseconds), `true`, `false`. Anything else is the real agent's `spawn_failed`
 * (`NAME: not found in PATH`). COPY_IN and COPY_OUT are answered as an agent that predates
 * copies answers them (`bad_message`).
 */
import {
  Channel, decodeCredit, decodeJson, encodeCredit, encodeFrame, encodeJson, ExecRequest, type Frame, FrameDecoder, FrameType, GuestConfig, Hello,
  INITIAL_WINDOW, MAX_DATA_CHUNK, PROTOCOL_VERSION, SignalRequest, ThawRequest
} from "@boxlite/agent-protocol"
import { Duplex } from "node:stream"

export interface FakeAgentOptions {
  /** The agent string of HELLO_ACK. Default `boxlite-fake-agent`. */
  readonly agent?: string
  /** Reads every frame and answers none (a wedged guest). */
  readonly silent?: boolean
  /** Guest memory, for METRICS_REPORT. Default 512. */
  readonly memoryMib?: number
  /** Where the agent's console lines go (`boxlite-agent: ...`). */
  readonly console?: (line: string) => void
  /** After SHUTDOWN: the guest has synced and powers the VM off. */
  readonly onPowerOff?: () => void
  /** After each exec's EXIT. */
  readonly onExecEnd?: () => void
  /** Restored from saved state: greeted already, frozen until THAW, numbering from `nextStream`. */
  readonly restored?: FakeAgentState
}

/** What a saved fake VM remembers of its agent. */
export interface FakeAgentState {
  readonly nextStream: number
  readonly configured?: unknown
}

export interface FakeAgent {
  /** vCPUs stopped: nothing is read or written until resume(). */
  readonly pause: () => void
  readonly resume: () => void
  /** What a saved state keeps. */
  readonly state: () => FakeAgentState
  /** The VM is gone: timers stop, the stream is destroyed. */
  readonly close: () => void
}

const SIGKILL = 9
const SIGTERM = 15

/** Two connected in-memory streams: what one end writes the other reads; destroying one ends both. */
export const duplexPair = (): [Duplex, Duplex] => {
  const ends: Array<Duplex> = []
  const make = (i: number) =>
    new Duplex({
      read() {},
      // Delivered on the next tick, in order: a write never runs the other side's handlers inside the writer's call.
      write(chunk: Buffer, _encoding, callback) {
        process.nextTick(() => {
          const other = ends[1 - i]!
          if (!other.destroyed) other.push(chunk)
        })
        callback()
      },
      final(callback) {
        process.nextTick(() => ends[1 - i]!.push(null))
        callback()
      },
      destroy(error, callback) {
        process.nextTick(() => ends[1 - i]!.destroy())
        callback(error)
      }
    })
  ends.push(make(0), make(1))
  return [ends[0]!, ends[1]!]
}

/** One direction of an exec's output, within the window the host credits. */
interface Output {
  readonly pending: Array<Buffer>
  window: number
  ended: boolean
}

interface Exec {
  readonly id: number
  readonly request: ExecRequest
  readonly out: Output
  readonly err: Output
  /** Set once the process has ended: EXIT goes once the outputs have drained. */
  status: { exitCode: number; signal?: number; timedOut?: boolean } | undefined
  /** `cat`: stdin bytes not yet credited back (they wait until stdout has room). */
  owedStdin: number
  readonly timers: Set<NodeJS.Timeout>
  onStdin: ((data: Buffer) => void) | undefined
  onStdinClose: (() => void) | undefined
  /** After a fresh THAW: the process runs on, nobody hears from it. */
  detached: boolean
}

const queued = (output: Output) => output.pending.reduce((n, b) => n + b.length, 0)

/** Serves the agent protocol on `stream` until it closes or close() is called. */
export const serveFakeAgent = (stream: Duplex, options: FakeAgentOptions = {}): FakeAgent => {
  const decoder = new FrameDecoder()
  const execs = new Map<number, Exec>()
  const log = (line: string) => options.console?.(`boxlite-agent: ${line}\n`)
  let greeted = options.restored !== undefined
  let configured: unknown = options.restored?.configured
  let highestStream = (options.restored?.nextStream ?? 1) - 1
  let nextPid = 100
  let paused = false
  // A restored agent was saved frozen: it speaks again after THAW.
  let frozen = options.restored !== undefined
  let closed = false
  const heldOut: Array<Buffer> = []
  const heldIn: Array<Buffer> = []

  const write = (frame: Buffer) => {
    if (closed || stream.destroyed) return
    if (paused || frozen) heldOut.push(frame)
    else stream.write(frame)
  }
  const send = (type: number, id: number, payload?: Uint8Array) => write(encodeFrame(type, id, payload))
  const refuse = (id: number, code: string, message: string) => send(FrameType.ERROR, id, encodeJson({ code, message }))

  const flush = (exec: Exec) => {
    if (exec.detached) return
    for (const [output, type] of [[exec.out, FrameType.STDOUT], [exec.err, FrameType.STDERR]] as const) {
      while (output.pending.length > 0 && output.window > 0) {
        const head = output.pending[0]!
        const n = Math.min(head.length, output.window, MAX_DATA_CHUNK)
        send(type, exec.id, head.subarray(0, n))
        output.window -= n
        if (n === head.length) output.pending.shift()
        else output.pending[0] = head.subarray(n)
      }
    }
    // `cat` takes more stdin once its stdout has room again.
    if (exec.owedStdin > 0 && queued(exec.out) < INITIAL_WINDOW) {
      send(FrameType.CREDIT, exec.id, encodeCredit(Channel.stdin, exec.owedStdin))
      exec.owedStdin = 0
    }
    if (exec.status && exec.out.pending.length === 0 && exec.err.pending.length === 0) {
      for (const [output, type] of [[exec.out, FrameType.STDOUT], [exec.err, FrameType.STDERR]] as const) {
        if (!output.ended) send(type, exec.id)
        output.ended = true
      }
      send(FrameType.EXIT, exec.id, encodeJson(exec.status))
      execs.delete(exec.id)
      options.onExecEnd?.()
    }
  }

  const print = (exec: Exec, channel: "out" | "err", text: string | Buffer) => {
    if (exec.status) return
    const bytes = typeof text === "string" ? Buffer.from(text) : text
    // On a terminal both streams are the terminal: everything comes as STDOUT.
    const output = channel === "out" || exec.request.tty ? exec.out : exec.err
    if (bytes.length > 0) output.pending.push(bytes)
    flush(exec)
  }

  const finish = (exec: Exec, status: Exec["status"]) => {
    if (exec.status) return
    exec.status = status
    for (const timer of exec.timers) clearTimeout(timer)
    exec.timers.clear()
    exec.onStdin = undefined
    exec.onStdinClose = undefined
    if (exec.detached) execs.delete(exec.id)
    else flush(exec)
  }
  const killed = (exec: Exec, signal: number, timedOut = false) =>
    finish(exec, { exitCode: 128 + signal, signal, ...(timedOut ? { timedOut: true } : {}) })
  const after = (exec: Exec, ms: number, then: () => void) => {
    const timer = setTimeout(() => {
      exec.timers.delete(timer)
      then()
    }, ms)
    exec.timers.add(timer)
  }

  const run = (exec: Exec) => {
    const [command, ...args] = exec.request.argv
    const name = command.slice(command.lastIndexOf("/") + 1)
    switch (name) {
      case "echo":
        print(exec, "out", `${args.join(" ")}\n`)
        return finish(exec, { exitCode: 0 })
      case "echo-stderr":
        print(exec, "err", `${args.join(" ")}\n`)
        return finish(exec, { exitCode: 0 })
      case "env":
        print(exec, "out", exec.request.env.map(([k, v]) => `${k}=${v}\n`).join(""))
        return finish(exec, { exitCode: 0 })
      case "true":
        return finish(exec, { exitCode: 0 })
      case "false":
        return finish(exec, { exitCode: 1 })
      case "exit": {
        const code = Number(args[0] ?? 0)
        return finish(exec, { exitCode: Number.isInteger(code) && code >= 0 && code <= 255 ? code : 2 })
      }
      case "sleep": {
        const ms = Number(args[0] ?? 0)
        if (!Number.isFinite(ms) || ms < 0) {
          print(exec, "err", `sleep: invalid time interval '${args[0]}'\n`)
          return finish(exec, { exitCode: 1 })
        }
        return after(exec, ms, () => finish(exec, { exitCode: 0 }))
      }
      case "cat":
        if (args.length > 0) {
          print(exec, "err", "cat: the fake agent has no files\n")
          return finish(exec, { exitCode: 1 })
        }
        exec.onStdin = (data) => {
          exec.owedStdin += data.length
          print(exec, "out", data)
        }
        exec.onStdinClose = () => finish(exec, { exitCode: 0 })
        return
    }
  }

  const onExec = (frame: Frame) => {
    if (frame.stream === 0 || execs.has(frame.stream)) return refuse(frame.stream, "stream_in_use", `stream ${frame.stream} is in use`)
    const request = decodeJson(ExecRequest, frame.payload)
    if (!request) return refuse(frame.stream, "bad_message", "bad EXEC payload")
    highestStream = Math.max(highestStream, frame.stream)
    const command = request.argv[0]
    const known = ["echo", "echo-stderr", "env", "true", "false", "exit", "sleep", "cat"]
    if (!known.includes(command.slice(command.lastIndexOf("/") + 1))) {
      // The real agent's words (guest/agent/exec.go), which the host maps to exit code 127.
      return refuse(frame.stream, "spawn_failed", command.includes("/") ? `fork/exec ${command}: no such file or directory` : `${command}: not found in PATH`)
    }
    const exec: Exec = {
      id: frame.stream, request, status: undefined, owedStdin: 0, timers: new Set(), onStdin: undefined, onStdinClose: undefined, detached: false,
      out: { pending: [], window: INITIAL_WINDOW, ended: false },
      err: { pending: [], window: INITIAL_WINDOW, ended: false }
    }
    execs.set(exec.id, exec)
    send(FrameType.STARTED, exec.id, encodeJson({ pid: nextPid++ }))
    // On a terminal stderr is the terminal: it ends at once.
    if (request.tty) {
      send(FrameType.STDERR, exec.id)
      exec.err.ended = true
    }
    if (request.timeoutMs) after(exec, request.timeoutMs, () => killed(exec, SIGKILL, true))
    run(exec)
  }

  const onStreamFrame = (frame: Frame) => {
    const exec = execs.get(frame.stream)
    switch (frame.type) {
      case FrameType.STDIN:
        if (!exec || exec.status) return
        if (exec.onStdin) exec.onStdin(Buffer.from(frame.payload))
        else send(FrameType.CREDIT, exec.id, encodeCredit(Channel.stdin, frame.payload.length))
        return
      case FrameType.STDIN_CLOSE:
        return exec?.onStdinClose?.()
      case FrameType.CREDIT: {
        const credit = decodeCredit(frame.payload)
        if (!exec || !credit) return
        if (credit.channel === Channel.stdout) exec.out.window += credit.bytes
        if (credit.channel === Channel.stderr) exec.err.window += credit.bytes
        return flush(exec)
      }
      case FrameType.SIGNAL: {
        const request = decodeJson(SignalRequest, frame.payload)
        if (!request) return refuse(frame.stream, "bad_message", "bad SIGNAL payload")
        if (exec) killed(exec, request.signal)
        return
      }
      case FrameType.RESIZE:
        return
    }
  }

  const onFrame = (frame: Frame) => {
    if (options.silent) return
    if (!greeted && frame.type !== FrameType.HELLO) return refuse(frame.stream, "not_ready", "no HELLO yet")
    switch (frame.type) {
      case FrameType.HELLO: {
        const hello = decodeJson(Hello, frame.payload)
        if (!hello) return refuse(0, "bad_message", "bad HELLO payload")
        greeted = true
        return send(FrameType.HELLO_ACK, 0, encodeJson({ version: Math.min(hello.version, PROTOCOL_VERSION), agent: options.agent ?? "boxlite-fake-agent" }))
      }
      case FrameType.CONFIGURE: {
        const config = frame.stream === 0 ? decodeJson(GuestConfig, frame.payload) : undefined
        if (!config) return refuse(frame.stream, "bad_message", "bad CONFIGURE payload")
        if (configured !== undefined && JSON.stringify(configured) !== JSON.stringify(config)) {
          return refuse(0, "configure_failed", "configured already, differently")
        }
        configured = config
        log(`configured (network ${config.network !== undefined}, ${config.mounts.length} mounts)`)
        return send(FrameType.CONFIGURED, 0, encodeJson({}))
      }
      case FrameType.EXEC:
        return onExec(frame)
      case FrameType.COPY_IN:
      case FrameType.COPY_OUT:
        return refuse(frame.stream, "bad_message", `unexpected frame type ${frame.type}`)
      case FrameType.STDIN:
      case FrameType.STDIN_CLOSE:
      case FrameType.CREDIT:
      case FrameType.SIGNAL:
      case FrameType.RESIZE:
        return onStreamFrame(frame)
      case FrameType.PING:
        return frame.payload.length > 64 ? refuse(0, "bad_message", "PING payload over 64 bytes") : send(FrameType.PONG, 0, frame.payload)
      case FrameType.METRICS: {
        const total = (options.memoryMib ?? 512) * 1024 * 1024
        return send(FrameType.METRICS_REPORT, 0, encodeJson({
          token: Buffer.from(frame.payload).toString(), memoryTotalBytes: total, memoryAvailableBytes: Math.floor(total * 0.75), networkRxBytes: 0, networkTxBytes: 0
        }))
      }
      case FrameType.FREEZE:
        send(FrameType.FROZEN, 0)
        frozen = true
        return
      case FrameType.THAW: {
        const thaw = decodeJson(ThawRequest, frame.payload)
        if (!thaw) return refuse(0, "bad_message", "bad THAW payload")
        // A fresh host does not hold the streams: what they said while frozen goes nowhere.
        const held = heldOut.splice(0).filter((f) => !thaw.fresh || f.readUInt32BE(5) === 0)
        if (thaw.fresh) for (const exec of execs.values()) exec.detached = true
        frozen = false
        send(FrameType.THAWED, 0, encodeJson({ nextStream: highestStream + 1 }))
        held.forEach(write)
        return
      }
      case FrameType.SHUTDOWN:
        log("shutting down")
        for (const exec of execs.values()) killed(exec, SIGTERM)
        // Powered off: the channel closes with the VM.
        return setImmediate(() => options.onPowerOff?.())
      default:
        return refuse(frame.stream, "bad_message", `unexpected frame type ${frame.type}`)
    }
  }

  const onData = (chunk: Buffer) => {
    if (paused) return void heldIn.push(chunk)
    let frames: Array<Frame>
    try {
      frames = decoder.push(chunk)
    } catch (e) {
      log(`protocol error: ${(e as Error).message}`)
      return close()
    }
    for (const frame of frames) onFrame(frame)
  }

  const close = () => {
    if (closed) return
    closed = true
    for (const exec of execs.values()) exec.timers.forEach(clearTimeout)
    execs.clear()
    stream.destroy()
  }

  stream.on("data", onData)
  stream.on("error", close)
  stream.on("close", close)
  if (!options.silent) log("ready")

  return {
    pause: () => {
      paused = true
    },
    resume: () => {
      if (!paused) return
      paused = false
      if (!frozen) heldOut.splice(0).forEach(write)
      heldIn.splice(0).forEach(onData)
    },
    state: () => ({ nextStream: highestStream + 1, ...(configured !== undefined ? { configured } : {}) }),
    close
  }
}
