#!/usr/bin/env node
// Launcher for the compiled CLI (present before the first build, so npm can link it).
import "../dist/main.js";
