/** Parse and format image references (`python:slim`, `oci:/path:tag`). */
export * from "./ImageReference.js"
/** The resolved image model (config + layers) and the image errors. */
export * from "./Image.js"
/** Read images from OCI image layout directories. */
export { blobPath, resolveLayout } from "./OciLayout.js"
/** OCI platforms and the host's own. */
export * from "./Platform.js"
