// esbuild inject: gives bundled ES modules an import.meta.url in the CommonJS output.
import { pathToFileURL } from 'node:url';
export const __ctnet_import_meta_url = pathToFileURL(__filename).href;
