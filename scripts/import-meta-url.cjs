// Stands in for import.meta.url in the CommonJS bundles (esbuild's `inject`).
export const importMetaUrl = require('node:url').pathToFileURL(__filename).href;
