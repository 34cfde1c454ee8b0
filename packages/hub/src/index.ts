export { HUB, hubEntry, sandboxDefinition, templateView, type HubEntry, type HubPort, type HubService } from "./catalog.js";
export { HubImages, HUB_IMAGES_DIR, hubServiceOf, type HubImagesOptions, type HubBuildTiming } from "./hub-images.js";
export { withHubServices, startHubService, type ServiceSandbox } from "./service-node.js";
export { hubRoutes, type HubRoutesOptions } from "./routes.js";
