// Verify every token of tokens.txt with panva/jose on Node.js (WebCrypto),
// 256 verifications in flight at a time so that jose can use the thread pool.
// Same checks as agentctx verify where jose has them. Prints the count of
// valid tokens; exits 1 if any token fails.
import { readFileSync } from 'node:fs';
import { importJWK, jwtVerify, decodeProtectedHeader } from 'jose';

const [tokensPath, jwksPath] = process.argv.slice(2);
const AUD = 'spiffe://example.com/agent/b';
const keys = {};
for (const k of JSON.parse(readFileSync(jwksPath, 'utf8')).keys) {
  keys[k.kid] = await importJWK(k, k.alg);
}
const tokens = readFileSync(tokensPath, 'utf8').split('\n').filter(Boolean);
let ok = 0;
for (let i = 0; i < tokens.length; i += 256) {
  const chunk = tokens.slice(i, i + 256);
  await Promise.all(chunk.map(async (tok) => {
    const { kid } = decodeProtectedHeader(tok);
    await jwtVerify(tok, keys[kid], { algorithms: ['ES256', 'EdDSA'], audience: AUD, requiredClaims: ['exp', 'iat', 'iss', 'jti'] });
    ok++;
  }));
}
console.log(ok);
