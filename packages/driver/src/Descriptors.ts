/**
 * A VMM in a jail sees none of the box's directories: a driver opens the box's files itself and
 * hands the VMM descriptors. Opened together, they are closed together, and a file that fails to
 * open closes those opened before it.
 */
import * as fs from "node:fs"

/** `files` opens what it needs with `open`; the result has `close` for all of them (idempotent). */
export const openDescriptors = <A extends object>(files: (open: (file: string, flags: number) => number) => A): A & { readonly close: () => void } => {
  const opened: Array<number> = []
  const close = () => opened.splice(0).forEach((fd) => fs.closeSync(fd))
  try {
    return {
      ...files((file, flags) => {
        const fd = fs.openSync(file, flags)
        opened.push(fd)
        return fd
      }),
      close
    }
  } catch (e) {
    close()
    throw e
  }
}
