package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ciampdp/pdp/pdp/api"
	"github.com/ciampdp/pdp/pdp/consent"
)

// consentCommand is the command-line client of the consent admin API of a
// running PDP (/v1/consents…), plus offline verification of a receipt.
func consentCommand() *command {
	return &command{
		name:    "consent",
		args:    "give|refuse|withdraw|renew FILE|- | get SUBJECT | history SUBJECT | receipt EVENT-ID | verify RECEIPT|-",
		summary: "record and read consent on a running PDP (give, refuse, withdraw, renew, get, history, receipt) and verify a signed receipt",
		flags: func(fs *pflag.FlagSet) {
			adminFlags(fs)
			fs.String("at", "", "get: the subject's consents as they were at this RFC 3339 time")
			fs.String("key", "", "verify: the receipt key as the JWK 'x' value (base64url); default: fetched from --server")
		},
		run: runConsent,
	}
}

func runConsent(ctx context.Context, std stdio, fs *pflag.FlagSet, args []string) error {
	if len(args) != 2 {
		return usagef("want a subcommand and one argument: give|refuse|withdraw|renew FILE|-, get SUBJECT, history SUBJECT, receipt EVENT-ID, verify RECEIPT|-")
	}
	base, ctx, cancel, err := adminTarget(ctx, fs)
	if err != nil {
		return err
	}
	defer cancel()
	verb, arg := args[0], args[1]
	u := *base
	switch verb {
	case "give", "refuse", "withdraw", "renew":
		body, err := readArg(std.in, arg)
		if err != nil {
			return err
		}
		u.Path += api.ConsentsPath + "/" + verb
		return adminCall(ctx, std.out, http.MethodPost, u.String(), body)
	case "get", "history":
		u.Path += api.ConsentsPath + "/subjects/" + url.PathEscape(arg)
		if verb == "history" {
			u.Path += "/history"
		}
		if at, _ := fs.GetString("at"); at != "" && verb == "get" {
			u.RawQuery = url.Values{"at": {at}}.Encode()
		}
		return adminCall(ctx, std.out, http.MethodGet, u.String(), nil)
	case "receipt":
		u.Path += api.ConsentsPath + "/receipts/" + url.PathEscape(arg)
		return adminCall(ctx, std.out, http.MethodGet, u.String(), nil)
	case "verify":
		return verifyReceipt(ctx, std, fs, base, arg)
	}
	return usagef("unknown subcommand %q", verb)
}

// verifyReceipt checks a receipt's signature and prints its claims.
func verifyReceipt(ctx context.Context, std stdio, fs *pflag.FlagSet, base *url.URL, arg string) error {
	raw, err := readArg(std.in, arg)
	if err != nil {
		return err
	}
	jws := strings.TrimSpace(string(raw))
	if strings.HasPrefix(jws, "{") { // the JSON answer of `consent give` or `consent receipt`
		var ans struct {
			Receipt string `json:"receipt"`
		}
		if err := json.Unmarshal(raw, &ans); err != nil || ans.Receipt == "" {
			return errors.New("the input is JSON without a \"receipt\"")
		}
		jws = ans.Receipt
	}
	x, _ := fs.GetString("key")
	if x == "" {
		u := *base
		u.Path += api.ConsentsPath + "/receipt-key"
		raw, err := adminDo(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return fmt.Errorf("fetch the receipt key: %w", err)
		}
		var jwk map[string]string
		if err := json.Unmarshal(raw, &jwk); err != nil {
			return fmt.Errorf("fetch the receipt key: %w", err)
		}
		x = jwk["x"]
	}
	pub, err := base64.RawURLEncoding.DecodeString(x)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return errors.New("the receipt key is not a base64url Ed25519 public key")
	}
	claims, err := consent.VerifyReceipt(ed25519.PublicKey(pub), jws)
	if err != nil {
		return fmt.Errorf("receipt NOT valid: %w", err)
	}
	out, _ := json.MarshalIndent(claims, "", "  ")
	fmt.Fprintf(std.out, "receipt valid: signed by the key %s\n%s\n", x, out)
	return nil
}
