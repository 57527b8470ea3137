// Command mint-token signs a DEMO access token for the Northbank sidecar
// example with the committed demo key (demo-only-signing-key.json): the
// token an identity provider would give the mobile-banking app.
//
//	go run ./examples/northbank/sidecar/mint-token -sub bob -act-for alice
//
// For the PDP's actor proof (examples/northbank/pdp-actor-tokens.yaml), a
// token for the PDP's audience, issued to the budget app's web client:
//
//	go run ./examples/northbank/sidecar/mint-token -sub alice -aud https://pdp.northbank.example/ -azp budget-app-web
//
// Every token gets a fresh random jti (so each is usable once where the
// PDP wants single use); -jti sets one, -no-jti leaves it out.
//
// Never use the demo key, or this tool, for anything but the example.
package main

import (
	"crypto/rand"
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
	azp := flag.String("azp", "", "the client the token is issued to (azp claim); optional")
	jti := flag.String("jti", "", "the token's id (jti claim); default: a fresh random one")
	noJTI := flag.Bool("no-jti", false, "leave the jti claim out")
	flag.Parse()
	if *sub == "" {
		fmt.Fprintln(os.Stderr, "mint-token: -sub is required")
		os.Exit(2)
	}
	id := *jti
	switch {
	case *noJTI && id != "":
		fmt.Fprintln(os.Stderr, "mint-token: -jti and -no-jti exclude each other")
		os.Exit(2)
	case !*noJTI && id == "":
		id = rand.Text()
	}
	extra := map[string]any{}
	for name, v := range map[string]string{"act_for": *actFor, "azp": *azp, "jti": id} {
		if v != "" {
			extra[name] = v
		}
	}
	tok, err := mint(*key, *sub, *iss, *aud, *ttl, extra)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mint-token:", err)
		os.Exit(1)
	}
	fmt.Println(tok)
}

// mint signs the token of sub with the key in keyFile; extra claims are
// added as they are.
func mint(keyFile, sub, iss, aud string, ttl time.Duration, extra map[string]any) (string, error) {
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
	for k, v := range extra {
		claims[k] = v
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}
