package trust

import "github.com/agentctx/agentctx/internal/jws"

// KeyCache keeps per-key precomputation for checking signatures of
// trusted keys: a P-256 key's table (built at its 40th use, at most 32
// kept), an Ed25519 key decompressed once (at most 1,024). Verifiers of the
// same keys share one (ect.Config.KeyCache, act.Config.KeyCache); it is
// safe for concurrent use. The accept set is the standard library's.
type KeyCache = jws.KeyCache

// NewKeyCache returns an empty KeyCache.
func NewKeyCache() *KeyCache { return jws.NewKeyCache() }
