// Command mint-token signs a DEMO access token for the Northbank sidecar
// example with the committed demo key (demo-only-signing-key.json): the
// token an identity provider would give the mobile-banking app.
//
//	go run ./examples/northbank/sidecar/mint-token -sub bob -act-for alice
//
// Never use the demo key, or this tool, for anything but the example.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func main() {
	key := flag.String("key", "examples/northbank/sidecar/demo-only-signing-key.json", "the private JWK to sign with")
	sub := flag.String("sub", "", "the subject (a user id: alice, bob, …); required")
	actFor := flag.String("act-for", "", "the person the subject acts for (act_for claim); optional")
	ttl := flag.Duration("ttl", time.Hour, "how long the token is valid")
	iss := flag.String("iss", "https://idp.northbank.example/", "issuer")
	aud := flag.String("aud", "mobile-banking", "audience")
	flag.Parse()
	if *sub == "" {
		fmt.Fprintln(os.Stderr, "mint-token: -sub is required")
		os.Exit(2)
	}
	tok, err := mint(*key, *sub, *actFor, *iss, *aud, *ttl)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mint-token:", err)
		os.Exit(1)
	}
	fmt.Println(tok)
}

func mint(keyFile, sub, actFor, iss, aud string, ttl time.Duration) (string, error) {
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return "", err
	}
	var jwk jose.JSONWebKey
	if err := json.Unmarshal(data, &jwk); err != nil {
		return "", fmt.Errorf("%s: %w", keyFile, err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(jwk.Algorithm), Key: jwk},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	now := time.Now()
	claims := map[string]any{"iss": iss, "aud": aud, "sub": sub, "iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	if actFor != "" {
		claims["act_for"] = actFor
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}
