/** Absolute paths of the built guest kernel and initramfs, and the base kernel command line. */
export declare function guestArtifacts(): {
  readonly kernel: string
  readonly initrd: string
  readonly cmdline: string
  readonly kernelVersion: string
}
