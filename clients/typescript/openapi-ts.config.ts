// @hey-api/openapi-ts configuration for scripts/client-e2e.sh: a fetch client with an SDK whose
// requests and responses are validated by the generated zod schemas. Input and output come from
// the script (the committed openapi.yaml; a temporary directory).
import { defineConfig } from '@hey-api/openapi-ts';

export default defineConfig({
  input: process.env.GIFTCODES_E2E_SPEC ?? '../../openapi.yaml',
  output: process.env.GIFTCODES_E2E_TS_OUT ?? 'generated',
  plugins: [
    '@hey-api/client-fetch',
    'zod',
    // Every response is checked against its zod schema; requests are not (zod has no schema
    // for a file body, which `format: binary` gives as a string).
    { name: '@hey-api/sdk', validator: { request: false, response: 'zod' } },
  ],
});
