// ComputerBox: a desktop in a box, driven the way a computer-use agent does it (screenshot,
// mouse, keyboard) and watchable in a browser while it runs.
//   node examples/computerbox.mjs      (the desktop image is built by scripts/install.sh)
import { ComputerBox } from "boxlite"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const desktop = new ComputerBox() // 1024x768, 2 vCPUs, 2 GiB; { width, height, ...BoxOptions }
try {
  await desktop.waitUntilReady(180_000) // under software emulation a desktop takes ~30-60 s
  console.log(`watch it: ${desktop.viewerUrl()}`)
  const [width, height] = await desktop.getScreenSize()
  console.log(`screen: ${width}x${height}`)

  // A terminal to type into (an agent would find one by screenshot; here we open it).
  await desktop.exec("sh", "-c", "setsid -f xterm -T notes -geometry +100+100 -e sh -c 'cat > /tmp/notes.txt' >/dev/null 2>&1", { user: "desktop", env: { DISPLAY: ":1" } })
  await desktop.exec("xdotool", "search", "--sync", "--name", "^notes$", { user: "desktop", env: { DISPLAY: ":1" } })
  await desktop.mouseMove(200, 200) // inside the terminal
  await desktop.leftClick()
  await desktop.type("Hello from ComputerBox: ünïcödé ✓\n")
  await desktop.key("ctrl+d") // end of input: cat saves the file and the terminal closes

  const shot = await desktop.screenshot()
  const file = path.join(os.tmpdir(), "computerbox-screenshot.png")
  fs.writeFileSync(file, Buffer.from(shot.data, "base64"))
  console.log(`screenshot: ${shot.width}x${shot.height} ${shot.format}, saved to ${file}`)
  console.log(`cursor at: ${(await desktop.cursorPosition()).join(", ")}`)

  for (let i = 0; i < 20; i++) {
    const { stdout } = await desktop.exec("cat", "/tmp/notes.txt")
    if (stdout.endsWith("\n")) {
      console.log(`the terminal saved: ${JSON.stringify(stdout)}`)
      break
    }
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
} finally {
  await desktop.stop() // or: await using desktop = new ComputerBox() (TypeScript, Node >= 24)
}
