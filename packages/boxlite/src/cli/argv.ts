/**
 * Docker's reading of `run [OPTIONS] IMAGE [COMMAND] [ARG...]` and `exec [OPTIONS] BOX COMMAND
 * [ARG...]`: options end at the first operand, so `boxlite run busybox ls -l` passes `-l` to
 * `ls`. Effect's parser takes flags anywhere before `--`; inserting `--` after that operand
 * gives Docker's reading with it.
 */

/** Per command: the flags that take no value (the others consume the next word). */
const BOOLEAN_FLAGS: Readonly<Record<string, ReadonlySet<string>>> = {
  run: new Set(["--rm", "--warm", "--interactive", "-i", "--tty", "-t", "--help", "-h"]),
  exec: new Set(["--interactive", "-i", "--tty", "-t", "--help", "-h"])
}

export const dockerArgv = (argv: ReadonlyArray<string>): Array<string> => {
  const [command, ...rest] = argv
  const booleans = command === undefined ? undefined : BOOLEAN_FLAGS[command]
  if (booleans === undefined) return [...argv]
  for (let i = 0; i < rest.length; i++) {
    const word = rest[i]!
    if (word === "--") return [...argv]
    if (word.startsWith("-") && word.length > 1) {
      // `--env=K=V` carries its value; in a cluster (`-it`, `-ie K=V`) the last flag decides.
      const flag = word.startsWith("--") ? word : `-${word.at(-1)}`
      if (!word.includes("=") && !booleans.has(flag)) i++
      continue
    }
    // The first operand (IMAGE or BOX): what follows is the command, given as is.
    return i + 1 < rest.length && rest[i + 1] !== "--" ? [command!, ...rest.slice(0, i + 1), "--", ...rest.slice(i + 1)] : [...argv]
  }
  return [...argv]
}
