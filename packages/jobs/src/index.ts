export * from "./job-spec.js";
export * from "./job-service.js";
export * from "./queue.js";
export * from "./scheduler.js";
export { jobRoutes, type JobRoutesOptions } from "./routes.js";
export * from "./sandbox-schedules.js";
export { scheduleRoutes } from "./schedule-routes.js";
