/** Parse and format image references (`python:slim`, `oci:/path:tag`). */
export * from "./ImageReference.js"
/** The resolved image model (config + layers) and the image errors. */
export * from "./Image.js"
/** Read images from OCI image layout directories. */
export { blobPath, resolveLayout } from "./OciLayout.js"
/** OCI platforms and the host's own. */
export * from "./Platform.js"
/** Registry settings (mirrors, TLS, credentials), pull options and progress, registry errors, manifest resolution. */
export * from "./Registry.js"
/** The content store of pulled images: pull, resolveLocal, list, inspect, remove, prune; as a service and as functions. */
export * from "./ContentStore.js"
