"""Verify every token of tokens.txt with PyJWT (OpenSSL through cryptography).

Same checks as agentctx verify where PyJWT has them: signature with the key
named by kid, alg allowlist, exp, iat, audience. Prints the count of valid
tokens; exits 1 if any token fails. With --per-core the tokens are split
across one process per core (what a Python service would do to use them).
"""
import json
import multiprocessing
import os
import sys

import jwt
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

AUD = "spiffe://example.com/agent/b"
KEYS = {}


def load(jwks_path):
    for k in json.load(open(jwks_path))["keys"]:
        alg = ECAlgorithm if k["kty"] == "EC" else OKPAlgorithm
        KEYS[k["kid"]] = alg.from_jwk(json.dumps(k))


def verify(tokens):
    ok = 0
    for tok in tokens:
        kid = jwt.get_unverified_header(tok)["kid"]
        jwt.decode(tok, KEYS[kid], algorithms=["ES256", "EdDSA"], audience=AUD,
                   options={"require": ["exp", "iat", "iss", "jti"]})
        ok += 1
    return ok


def main(tokens_path, jwks_path, per_core):
    with open(tokens_path) as f:
        tokens = [line.strip() for line in f if line.strip()]
    if not per_core:
        load(jwks_path)
        print(verify(tokens))
        return
    n = os.cpu_count() or 1
    chunks = [tokens[i::n] for i in range(n)]
    with multiprocessing.Pool(n, initializer=load, initargs=(jwks_path,)) as pool:
        print(sum(pool.map(verify, chunks)))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--per-core" in sys.argv[3:])
