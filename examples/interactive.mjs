// InteractiveBox: a shell in a micro-VM on your terminal (type `exit` to leave).
//   node examples/interactive.mjs
// Without a terminal (e.g. piped), it types a short session itself and shows the screen.
import { InteractiveBox } from "boxlite"
import { PassThrough } from "node:stream"
import { fileURLToPath } from "node:url"

const image = `oci:${fileURLToPath(new URL("../images/out/busybox", import.meta.url))}:latest`

const box = new InteractiveBox({ image, memoryMib: 128 })
try {
  if (process.stdin.isTTY) {
    process.exitCode = await box.wait() // a shell on this terminal, in raw mode, following its size
  } else {
    const keys = new PassThrough()
    const exited = box.attach({ input: keys, output: process.stdout, size: { rows: 24, cols: 80 } })
    keys.write("tty; stty size; echo I am $(whoami) in $(hostname)\n")
    keys.write("exit 0\n")
    console.log(`\nshell exited with ${await exited}`)
  }
} finally {
  await box.stop()
}
