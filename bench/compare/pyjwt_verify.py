"""Verify every token of tokens.txt with PyJWT (OpenSSL through cryptography).

Same checks as agentctx verify where PyJWT has them: signature with the key
named by kid, alg allowlist, exp, iat, audience. Prints the count of valid
tokens; exits 1 if any token fails.
"""
import json
import sys

import jwt
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

AUD = "spiffe://example.com/agent/b"


def main(tokens_path, jwks_path):
    keys = {}
    for k in json.load(open(jwks_path))["keys"]:
        alg = ECAlgorithm if k["kty"] == "EC" else OKPAlgorithm
        keys[k["kid"]] = alg.from_jwk(json.dumps(k))
    ok = 0
    with open(tokens_path) as f:
        for line in f:
            tok = line.strip()
            kid = jwt.get_unverified_header(tok)["kid"]
            jwt.decode(tok, keys[kid], algorithms=["ES256", "EdDSA"], audience=AUD,
                       options={"require": ["exp", "iat", "iss", "jti"]})
            ok += 1
    print(ok)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
