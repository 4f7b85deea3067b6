/** Per-image ext4 bases and per-box qcow2 disks, and the StorageError they fail with. */
export { baseFileName, DiskStore, type DiskStoreOptions, layer, make, StorageError } from "./DiskStore.js"
