package signals

import (
	"encoding/json"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// Sign makes a compact SET of claims with a transmitter's private JWK
// (its alg and kid in the header, typ secevent+jwt): what a transmitter
// does, for the demo tool and tests.
func Sign(key jose.JSONWebKey, claims any) (string, error) {
	alg := jose.SignatureAlgorithm(key.Algorithm)
	if alg == "" {
		alg = jose.ES256
	}
	opts := (&jose.SignerOptions{}).WithType(SETType)
	if key.KeyID != "" {
		opts = opts.WithHeader("kid", key.KeyID)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key.Key}, opts)
	if err != nil {
		return "", fmt.Errorf("signals: signer: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("signals: claims: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("signals: sign: %w", err)
	}
	return jws.CompactSerialize()
}
