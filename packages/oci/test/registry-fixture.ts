/**
 * Real registries for the tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1,
 * each with its own port, storage and config, optionally behind htpasswd, TLS or token auth.
 * Images are pushed with skopeo from the prebuilt busybox layout.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process"
import { createHash, createPrivateKey, sign } from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"

const run = promisify(execFile)

/** The test image: built by images/build.sh, tag `latest`. */
export const BUSYBOX_LAYOUT = path.resolve(import.meta.dirname, "../../../images/out/busybox")

export const sha256 = (bytes: Buffer | string): string => `sha256:${createHash("sha256").update(bytes).digest("hex")}`

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const tempDirs: Array<string> = []

/** A fresh directory under the system temp dir, deleted by `removeTempDirs`. */
export const tempDir = (prefix: string): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  tempDirs.push(dir)
  return dir
}

export const removeTempDirs = (): void => {
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
}

export interface TestCertificates {
  readonly caPem: string
  readonly certFile: string
  readonly keyFile: string
}

/** A throwaway CA and a server certificate it signed for IP 127.0.0.1. */
export const makeCertificates = async (dir: string): Promise<TestCertificates> => {
  const at = (name: string) => path.join(dir, name)
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
  await run("openssl", ["req", "-x509", ...ec, "-keyout", at("ca.key"), "-out", at("ca.pem"), "-days", "1", "-subj", "/CN=boxlite test CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
  await run("openssl", ["req", ...ec, "-keyout", at("server.key"), "-out", at("server.csr"), "-subj", "/CN=127.0.0.1"])
  fs.writeFileSync(at("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
  await run("openssl", ["x509", "-req", "-in", at("server.csr"), "-CA", at("ca.pem"), "-CAkey", at("ca.key"), "-CAcreateserial",
    "-out", at("server.pem"), "-days", "1", "-extfile", at("server.ext")])
  return { caPem: fs.readFileSync(at("ca.pem"), "utf8"), certFile: at("server.pem"), keyFile: at("server.key") }
}

/** What docker-registry checks tokens against, and the key the test token server signs with. */
export interface TokenSigner {
  readonly realm: string
  readonly service: string
  readonly issuer: string
  readonly certFile: string
  readonly keyFile: string
}

export interface RegistryFixtureOptions {
  readonly htpasswd?: { readonly username: string; readonly password: string }
  readonly tls?: boolean
  readonly token?: TokenSigner
}

export interface RegistryFixture {
  /** `127.0.0.1:<port>`: the registry part of image references. */
  readonly host: string
  /** `http://127.0.0.1:<port>` or `https://...` */
  readonly url: string
  readonly storageDir: string
  readonly caPem: string | undefined
  /** Pushes the busybox layout as `name:tag`; returns the manifest digest. */
  readonly pushBusybox: (nameAndTag: string) => Promise<string>
  /** Path of a blob's data file inside the registry's storage. */
  readonly blobDataPath: (digest: string) => string
  readonly stop: () => Promise<void>
}

export const startRegistry = async (options: RegistryFixtureOptions = {}): Promise<RegistryFixture> => {
  const dir = tempDir("registry-")
  const storageDir = path.join(dir, "storage")
  const port = await freePort()
  const host = `127.0.0.1:${port}`
  const lines = [
    "version: 0.1",
    "log: { level: error, accesslog: { disabled: true } }",
    `storage: { filesystem: { rootdirectory: ${storageDir} }, delete: { enabled: true } }`,
    `http:`,
    `  addr: ${host}`
  ]
  let caPem: string | undefined
  if (options.tls) {
    const certs = await makeCertificates(dir)
    caPem = certs.caPem
    lines.push(`  tls: { certificate: ${certs.certFile}, key: ${certs.keyFile} }`)
  }
  let creds: string[] = []
  if (options.htpasswd) {
    const { username, password } = options.htpasswd
    const { stdout } = await run("htpasswd", ["-Bbn", username, password])
    fs.writeFileSync(path.join(dir, "htpasswd"), stdout)
    lines.push(`auth: { htpasswd: { realm: test, path: ${path.join(dir, "htpasswd")} } }`)
    creds = ["--dest-creds", `${username}:${password}`]
  }
  if (options.token) {
    const t = options.token
    lines.push(`auth: { token: { realm: "${t.realm}", service: ${t.service}, issuer: ${t.issuer}, rootcertbundle: ${t.certFile} } }`)
    creds = ["--dest-creds", "pusher:secret"]
  }
  fs.writeFileSync(path.join(dir, "config.yml"), lines.join("\n") + "\n")

  const child: ChildProcess = spawn("docker-registry", ["serve", path.join(dir, "config.yml")], { stdio: ["ignore", "ignore", "pipe"] })
  let stderr = ""
  child.stderr?.on("data", (d: Buffer) => { stderr += d.toString() })
  await waitForPort(port, () => child.exitCode !== null ? `docker-registry exited: ${stderr}` : undefined)

  const scheme = options.tls ? "https" : "http"
  return {
    host,
    url: `${scheme}://${host}`,
    storageDir,
    caPem,
    pushBusybox: async (nameAndTag) => {
      await run("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", ...creds, `oci:${BUSYBOX_LAYOUT}:latest`, `docker://${host}/${nameAndTag}`])
      return busyboxManifestDigest()
    },
    blobDataPath: (digest) => {
      const hex = digest.slice(7)
      return path.join(storageDir, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data")
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve()
        child.once("exit", () => {
          fs.rmSync(dir, { recursive: true, force: true })
          resolve()
        })
        child.kill("SIGTERM")
      })
  }
}

/** The busybox layout's manifest digest (skopeo keeps OCI manifests byte for byte). */
export const busyboxManifestDigest = (): string => {
  const index = JSON.parse(fs.readFileSync(path.join(BUSYBOX_LAYOUT, "index.json"), "utf8")) as { manifests: Array<{ digest: string }> }
  return index.manifests[0]!.digest
}

export const busyboxManifest = (): { config: { digest: string; size: number }; layers: Array<{ digest: string; size: number }> } =>
  JSON.parse(fs.readFileSync(path.join(BUSYBOX_LAYOUT, "blobs/sha256", busyboxManifestDigest().slice(7)), "utf8"))

const waitForPort = async (port: number, failed: () => string | undefined): Promise<void> => {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    const problem = failed()
    if (problem) throw new Error(problem)
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => { socket.destroy(); resolve(true) })
      socket.once("error", () => resolve(false))
    })
    if (open) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`docker-registry did not listen on ${port}`)
}

/** A plain HTTP server on a free port; `close` also drops kept-alive connections. */
export const startHttpServer = async (handler: http.RequestListener): Promise<{ url: string; host: string; close: () => Promise<void> }> => {
  const server = http.createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as net.AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) })
  }
}

/** Forwards every request to `target`, unless `intercept` answers it first (returns true). */
export const startProxy = (
  target: string,
  intercept: (req: http.IncomingMessage, res: http.ServerResponse) => boolean
) =>
  startHttpServer((req, res) => {
    if (intercept(req, res)) return
    const upstream = http.request(`${target}${req.url}`, { method: req.method, headers: { ...req.headers, host: new URL(target).host } }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers)
      up.pipe(res)
    })
    upstream.on("error", () => { res.writeHead(502).end() })
    req.pipe(upstream)
  })

/**
 * A token server for docker-registry's `auth: token`: hands out RS256 JWTs carrying the
 * signing certificate in `x5c`, granting whatever scope is asked. Records each request.
 */
export const startTokenServer = async (dir: string) => {
  const keyFile = path.join(dir, "token.key")
  const certFile = path.join(dir, "token.pem")
  await run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyFile, "-out", certFile, "-days", "1", "-subj", "/CN=token issuer"])
  const key = createPrivateKey(fs.readFileSync(keyFile))
  const certDer = Buffer.from(fs.readFileSync(certFile, "utf8").replace(/-----[^-]+-----|\s/g, ""), "base64")
  const service = "test-registry"
  const issuer = "test-issuer"
  const requests: Array<{ scope: string | null; service: string | null; authorization: string | undefined }> = []
  const b64 = (v: object | Buffer) => (Buffer.isBuffer(v) ? v : Buffer.from(JSON.stringify(v))).toString("base64url")
  const server = await startHttpServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x")
    const scope = url.searchParams.get("scope")
    requests.push({ scope, service: url.searchParams.get("service"), authorization: req.headers.authorization })
    const access = (scope ?? "").split(" ").filter(Boolean).map((s) => {
      const [type, name, actions] = s.split(":")
      return { type, name, actions: (actions ?? "").split(",") }
    })
    const now = Math.floor(Date.now() / 1000)
    const header = b64({ alg: "RS256", typ: "JWT", x5c: [certDer.toString("base64")] })
    const claims = b64({ iss: issuer, sub: "anonymous", aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: String(Math.random()), access })
    const signature = sign("sha256", Buffer.from(`${header}.${claims}`), key)
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: `${header}.${claims}.${b64(signature)}` }))
  })
  const signer: TokenSigner = { realm: `${server.url}/token`, service, issuer, certFile, keyFile }
  return { signer, requests, close: server.close }
}
