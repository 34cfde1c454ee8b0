"""Hangar's code interpreter on port 8888 (the API @blaxel/core's CodeInterpreter calls).

POST /execute  {code, context_id?, language?, env_vars?}  -> NDJSON lines:
    {"type":"stdout"|"stderr","text","timestamp"}, {"type":"result", <mime fields>, "is_main_result"},
    {"type":"error","name","value","traceback"}, {"type":"number_of_executions","execution_count"}
POST /contexts {language?, cwd?} -> {"id","language","cwd"};  GET /contexts;  DELETE /contexts/<id>
POST /contexts/<id>/restart;  GET /health

Each context is its own Jupyter kernel (jupyter_client's AsyncKernelManager running ipykernel);
the kernel's iopub messages are turned into lines as they arrive.
"""

import asyncio
import json
import os
import re
import time
import uuid

import tornado.ioloop
import tornado.web
from jupyter_client.manager import AsyncKernelManager

PORT = int(os.environ.get("INTERPRETER_PORT", "8888"))
DEFAULT_CWD = os.environ.get("INTERPRETER_CWD", "/blaxel")
# language -> kernel spec name
KERNELS = {"python": "python3"}
ALIASES = {"python": "python", "python3": "python", "py": "python"}
# IPython colours its tracebacks; clients (often models) read them as plain text
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Jupyter mime types -> the result fields E2B-style clients (and @blaxel/core) read
MIME_FIELDS = {
    "text/plain": "text", "text/html": "html", "text/markdown": "markdown", "image/svg+xml": "svg",
    "image/png": "png", "image/jpeg": "jpeg", "application/pdf": "pdf", "text/latex": "latex",
    "application/json": "json", "application/javascript": "javascript",
}


class Context:
    def __init__(self, cid, language, cwd):
        self.id = cid
        self.language = language
        self.cwd = cwd
        self.km = None
        self.kc = None
        self.lock = asyncio.Lock()

    async def start(self):
        os.makedirs(self.cwd, exist_ok=True)
        self.km = AsyncKernelManager(kernel_name=KERNELS[self.language])
        await self.km.start_kernel(cwd=self.cwd, env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"})
        self.kc = self.km.client()
        self.kc.start_channels()
        await self.kc.wait_for_ready(timeout=60)

    async def stop(self):
        if self.kc:
            self.kc.stop_channels()
        if self.km:
            await self.km.shutdown_kernel(now=True)

    def view(self):
        return {"id": self.id, "language": self.language, "cwd": self.cwd}


contexts = {}
default_contexts = {}


def language_of(value):
    lang = ALIASES.get((value or "python").lower())
    if lang is None:
        raise tornado.web.HTTPError(400, reason=f"language {value!r} is not supported here (supported: python)")
    return lang


async def new_context(language, cwd):
    ctx = Context(str(uuid.uuid4()), language, cwd or DEFAULT_CWD)
    await ctx.start()
    contexts[ctx.id] = ctx
    return ctx


async def default_context(language):
    ctx = default_contexts.get(language)
    if ctx is None or ctx.id not in contexts:
        ctx = default_contexts[language] = await new_context(language, DEFAULT_CWD)
    return ctx


def result_line(content, main):
    out = {"type": "result", "is_main_result": main}
    extra = {}
    for mime, value in content.get("data", {}).items():
        field = MIME_FIELDS.get(mime)
        if field:
            out[field] = value
        else:
            extra[mime] = value
    if extra:
        out["extra"] = extra
    return out


class Handler(tornado.web.RequestHandler):
    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": self._reason}))

    def body(self):
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, reason="body must be JSON")
        if not isinstance(data, dict):
            raise tornado.web.HTTPError(400, reason="body must be a JSON object")
        return data


class Health(Handler):
    def get(self):
        self.write({"status": "ok", "contexts": len(contexts)})


class Contexts(Handler):
    async def post(self):
        data = self.body()
        ctx = await new_context(language_of(data.get("language")), data.get("cwd"))
        self.write(ctx.view())

    def get(self):
        self.set_header("Content-Type", "application/json")
        self.write(json.dumps([c.view() for c in contexts.values()]))


class OneContext(Handler):
    async def delete(self, cid):
        ctx = contexts.pop(cid, None)
        if ctx is None:
            raise tornado.web.HTTPError(404, reason=f"context {cid} not found")
        await ctx.stop()
        self.set_status(204)

    async def post(self, cid, action):
        ctx = contexts.get(cid)
        if ctx is None:
            raise tornado.web.HTTPError(404, reason=f"context {cid} not found")
        async with ctx.lock:
            await ctx.km.restart_kernel(now=True)
            await ctx.kc.wait_for_ready(timeout=60)
        self.write(ctx.view())


class Execute(Handler):
    def initialize(self):
        self.gone = False
        self.running = None

    def on_connection_close(self):
        # the client went away: stop what it started
        self.gone = True
        if self.running is not None:
            asyncio.ensure_future(self.running.km.interrupt_kernel())

    async def line(self, obj):
        if self.gone:
            return
        self.write(json.dumps(obj) + "\n")
        try:
            await self.flush()
        except tornado.iostream.StreamClosedError:
            self.gone = True

    async def post(self):
        data = self.body()
        code = data.get("code")
        if not isinstance(code, str):
            raise tornado.web.HTTPError(400, reason="code must be a string")
        cid = data.get("context_id")
        if cid and data.get("language"):
            raise tornado.web.HTTPError(400, reason="give context_id or language, not both")
        if cid:
            ctx = contexts.get(cid)
            if ctx is None:
                raise tornado.web.HTTPError(404, reason=f"context {cid} not found")
        else:
            ctx = await default_context(language_of(data.get("language")))
        envs = data.get("env_vars") or {}
        if not isinstance(envs, dict):
            raise tornado.web.HTTPError(400, reason="env_vars must be an object")
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("Cache-Control", "no-cache")
        async with ctx.lock:
            self.running = ctx
            if envs:
                # variables for this run only: set, then put back after it
                setup = "import os as __o; __hangar_env = {k: __o.environ.get(k) for k in %r}; __o.environ.update(%r)" % (list(envs), {k: str(v) for k, v in envs.items()})
                await self.run(ctx, setup, silent=True)
            try:
                await self.run(ctx, code, silent=False)
            finally:
                if envs:
                    reset = "[__o.environ.pop(k, None) if v is None else __o.environ.__setitem__(k, v) for k, v in __hangar_env.items()]; del __hangar_env"
                    await self.run(ctx, reset, silent=True)
                self.running = None
        if not self.gone:
            self.finish()

    async def run(self, ctx, code, silent):
        kc = ctx.kc
        msg_id = kc.execute(code, silent=silent, store_history=not silent, allow_stdin=False)
        count = None
        while True:
            if self.gone:
                silent = True  # drain what is left without writing
            msg = await kc.get_iopub_msg()
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content.get("execution_state") == "idle":
                break
            if silent:
                continue
            if kind == "stream":
                await self.line({"type": "stdout" if content.get("name") == "stdout" else "stderr", "text": content.get("text", ""), "timestamp": time.time()})
            elif kind == "execute_result":
                await self.line(result_line(content, True))
            elif kind == "display_data":
                await self.line(result_line(content, False))
            elif kind == "error":
                await self.line({"type": "error", "name": content.get("ename", ""), "value": content.get("evalue", ""), "traceback": ANSI.sub("", "\n".join(content.get("traceback", [])))})
            elif kind == "execute_input":
                count = content.get("execution_count")
        # the shell reply of this request (so replies do not pile up)
        while True:
            try:
                reply = await asyncio.wait_for(kc.get_shell_msg(), timeout=5)
            except asyncio.TimeoutError:
                break
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                count = reply["content"].get("execution_count", count)
                break
        if not silent and count is not None:
            await self.line({"type": "number_of_executions", "execution_count": count})


def main():
    app = tornado.web.Application([
        (r"/health", Health),
        (r"/execute", Execute),
        (r"/contexts", Contexts),
        (r"/contexts/([^/]+)", OneContext),
        (r"/contexts/([^/]+)/(restart)", OneContext),
    ])
    app.listen(PORT, address="0.0.0.0")
    loop = tornado.ioloop.IOLoop.current()
    # a warm Python kernel, so the first runCode does not wait for one
    loop.add_callback(lambda: default_context("python"))
    print(f"code interpreter listening on :{PORT}", flush=True)
    loop.start()


if __name__ == "__main__":
    main()
