/** OCI platform names (`linux/amd64`) and the one this host runs. */

export interface Platform {
  readonly os: string
  readonly architecture: string
  readonly variant?: string
}

const NODE_TO_OCI_ARCH: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", s390x: "s390x", ppc64: "ppc64le", riscv64: "riscv64" }

/** Guests are always Linux; the architecture is the host's, since VMs run natively. */
export const hostPlatform = (): Platform => ({ os: "linux", architecture: NODE_TO_OCI_ARCH[process.arch] ?? process.arch })

export const formatPlatform = (p: Platform): string => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`

export const platformMatches = (candidate: Partial<Platform> | undefined, wanted: Platform): boolean =>
  candidate?.os === wanted.os &&
  candidate.architecture === wanted.architecture &&
  (wanted.variant === undefined || candidate.variant === wanted.variant)
