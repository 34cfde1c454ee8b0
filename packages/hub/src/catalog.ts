// The hub's images: what `GET /v0/sandbox/hub` lists and how a sandbox of each starts. Each one
// but base-image is a Dockerfile in ../images/<name>/ (FROM Hangar's Debian base image), built on
// first use; base-image is that Debian base itself.

export interface HubPort {
  name: string;
  target: number;
  protocol: string;
}

/** The process a sandbox of the image starts with (the image's CMD), listed by the process API. */
export interface HubService {
  /** Process name, e.g. "dev-server". */
  process: string;
  /** The port it serves; the create waits (a while) for it to listen. */
  port: number;
  /** Working directory of the process. */
  workingDir: string;
}

export interface HubEntry {
  name: string;
  displayName: string;
  description: string;
  longDescription: string;
  categories: string[];
  url: string;
  /** Default memory (MB) Blaxel's console proposes. */
  memory: number;
  /** Ports users declare for it (the sandbox API on 8080/443 is Hangar's own and not listed). */
  ports: HubPort[];
  service?: HubService;
  /** Built from ../images/<name>/Dockerfile; false for the built-in base image. */
  dockerfile: boolean;
  hidden?: boolean;
}

export const HUB: readonly HubEntry[] = [
  {
    name: "base-image",
    displayName: "Base image",
    description: "Debian bookworm with bash, git, curl, Node.js and Python: the default sandbox image.",
    longDescription: "Hangar's own base image, built with debootstrap from Debian's mirror: Debian bookworm with the usual command-line tools, git, curl, Node.js 18 with npm, Python 3.11 with pip and venv. HOME and WORKDIR are /blaxel.",
    categories: ["base"],
    url: "https://www.debian.org",
    memory: 2048,
    ports: [],
    dockerfile: false,
  },
  {
    name: "node",
    displayName: "Node",
    description: "A development environment for Node.js applications, with npm, TypeScript and tsx.",
    longDescription: "The base image with Node.js 18 (Debian's), npm, and TypeScript and tsx installed globally from the npm registry. Start your own server on any port you declare.",
    categories: ["backend"],
    url: "https://nodejs.org",
    memory: 4096,
    ports: [],
    dockerfile: true,
  },
  {
    name: "py-app",
    displayName: "Python App",
    description: "A Python development environment with pip, venv and common libraries.",
    longDescription: "The base image with Python 3.11 (Debian's), pip (allowed to install into the system), venv, setuptools, wheel and a few common libraries (requests, yaml). Serve your app on port 8000.",
    categories: ["backend"],
    url: "https://www.python.org",
    memory: 4096,
    ports: [{ name: "python-app", target: 8000, protocol: "HTTP" }],
    dockerfile: true,
  },
  {
    name: "nextjs",
    displayName: "Next.js",
    description: "A Next.js app in /blaxel/app with its dev server running on port 3000.",
    longDescription: "A Next.js 15 (React 19) app in /blaxel/app whose dev server (process dev-server) runs on port 3000 with hot reload: edit the files and open the preview.",
    categories: ["web"],
    url: "https://nextjs.org",
    memory: 4096,
    ports: [{ name: "preview", target: 3000, protocol: "HTTP" }],
    service: { process: "dev-server", port: 3000, workingDir: "/blaxel/app" },
    dockerfile: true,
  },
  {
    name: "vite",
    displayName: "Vite React",
    description: "A Vite + React app in /blaxel/app with its dev server running on port 5173.",
    longDescription: "A Vite 5 + React 18 app in /blaxel/app whose dev server (process dev-server) runs on port 5173 with hot module replacement, open to any host name so previews work.",
    categories: ["web"],
    url: "https://vitejs.dev",
    memory: 4096,
    ports: [{ name: "preview", target: 5173, protocol: "HTTP" }],
    service: { process: "dev-server", port: 5173, workingDir: "/blaxel/app" },
    dockerfile: true,
  },
  {
    name: "expo",
    displayName: "Expo",
    description: "An Expo (React Native) app in /blaxel/app with its web dev server on port 8081.",
    longDescription: "An Expo SDK 52 app in /blaxel/app with react-native-web; its dev server (process dev-server, `expo start --web`) serves the web build on port 8081 in offline mode.",
    categories: ["react", "mobile"],
    url: "https://expo.dev",
    memory: 4096,
    ports: [{ name: "expo-web", target: 8081, protocol: "HTTP" }],
    service: { process: "dev-server", port: 8081, workingDir: "/blaxel/app" },
    dockerfile: true,
  },
  {
    name: "jupyter-server",
    displayName: "Jupyter Server",
    description: "The code interpreter: Jupyter kernels (ipykernel) behind the execute/contexts API on port 8888.",
    longDescription: "Python 3 with ipykernel, jupyter_client, numpy, pandas and matplotlib from Debian. Its server on port 8888 (process jupyter-server) runs each context in its own Jupyter kernel and streams stdout, stderr, rich results (images, HTML) and errors as NDJSON: the API of the SDK's CodeInterpreter.",
    categories: ["data-science"],
    url: "https://jupyter.org",
    memory: 4096,
    ports: [{ name: "jupyter", target: 8888, protocol: "HTTP" }],
    service: { process: "jupyter-server", port: 8888, workingDir: "/blaxel" },
    dockerfile: true,
  },
];

/** The entry an image reference's repository names (`blaxel/<name>`), if any. */
export function hubEntry(name: string): HubEntry | undefined {
  return HUB.find((e) => e.name === name);
}

/** `GET /v0/sandbox/hub`: SandboxDefinition of @blaxel/core. */
export function sandboxDefinition(e: HubEntry): Record<string, unknown> {
  return {
    name: e.name,
    displayName: e.displayName,
    description: e.description,
    longDescription: e.longDescription,
    categories: e.categories.map((name) => ({ name })),
    image: `blaxel/${e.name}:latest`,
    memory: e.memory,
    ports: e.ports,
    url: e.url,
    enterprise: false,
    coming_soon: false,
    hidden: e.hidden ?? false,
  };
}

/** `GET /v0/templates`: Template of @blaxel/core (sha = the content hash the image is built from). */
export function templateView(e: HubEntry, sha: string): Record<string, unknown> {
  return {
    name: e.name,
    description: e.description,
    topics: ["sandbox", ...e.categories],
    url: e.url,
    sha,
    defaultBranch: "main",
    variables: [],
  };
}
