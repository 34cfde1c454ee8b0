// Drive mounts (wire spec §5.8): mount a drive (or a directory of it) into this running sandbox,
// list and unmount. The SDK strips the leading "/" of the mount path in DELETE; it is put back.

import type { FastifyInstance, FastifyRequest } from "fastify";
import { HangarError } from "@hangar/common";
import { svc } from "../http.js";

function port(req: FastifyRequest) {
  const d = svc(req).drives;
  if (!d) throw new HangarError("not_configured", "drives are not available on this node");
  return d;
}

export async function driveRoutes(app: FastifyInstance): Promise<void> {
  // without a drives port (no storage on this node) listing is truthful: nothing is mounted
  app.get("/drives/mount", async (req) => ({ mounts: svc(req).drives ? await port(req).list() : [] }));

  app.post("/drives/mount", async (req) => {
    const m = await port(req).mount(req.body);
    return { success: true, message: `drive '${m.driveName}' mounted at ${m.mountPath}`, ...m };
  });

  app.delete<{ Params: { "*": string } }>("/drives/mount/*", async (req) => {
    const mountPath = await port(req).unmount(req.params["*"]);
    return { success: true, message: `unmounted ${mountPath}`, mountPath };
  });
}
