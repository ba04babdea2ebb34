#!/usr/bin/env node
// `node apps/demo/dist/bin.js [--http-port N] [--rate N] [--data-dir DIR]`: the demo without the build step.
import { runDemoCli } from './cli.js';

process.exit(await runDemoCli());
