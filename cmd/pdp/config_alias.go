package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/viper"
)

// deprecatedKeys are configuration keys that were spelled another way
// before. The old spelling still works, in the file and in the
// environment, and start logs a warning for it. PostgreSQL locations are
// spelled postgres_url everywhere (trail.postgres_url, `pdp log
// --postgres-url`, PDP_TEST_POSTGRES_URL); three sections said
// postgres_uri.
var deprecatedKeys = []struct{ old, key string }{
	{"relations.postgres_uri", "relations.postgres_url"},
	{"delegations.postgres_uri", "delegations.postgres_url"},
	{"consent.postgres_uri", "consent.postgres_url"},
}

// ErrBothSpellings: a setting is given under its deprecated and its
// current name in the same place (the file, or the environment).
var ErrBothSpellings = errors.New("set under both its deprecated and its current name; keep only the current one")

// bindDeprecatedEnv makes each old key's environment variable a fallback
// of the new key's (the new one wins when both are set).
func bindDeprecatedEnv(v *viper.Viper) error {
	for _, d := range deprecatedKeys {
		if err := v.BindEnv(d.key, envName(d.key), envName(d.old)); err != nil {
			return fmt.Errorf("bind %s: %w", envName(d.old), err)
		}
	}
	return nil
}

// renameDeprecated checks the deprecated spellings that file (read into v)
// and the environment use, and returns one warning for each. When the file
// uses one, it returns a fresh viper from fresh() holding the file's
// settings under the current names, so that the unknown-key check of
// UnmarshalExact still holds for everything else.
func renameDeprecated(v *viper.Viper, file string, fresh func() (*viper.Viper, error)) (*viper.Viper, []string, error) {
	var warnings, renames []string
	for _, d := range deprecatedKeys {
		oldEnv, newEnv := envName(d.old), envName(d.key)
		if _, ok := os.LookupEnv(oldEnv); ok {
			if _, ok := os.LookupEnv(newEnv); ok {
				return nil, nil, fmt.Errorf("%s and %s: %w", oldEnv, newEnv, ErrBothSpellings)
			}
			warnings = append(warnings, fmt.Sprintf("%s is deprecated: use %s", oldEnv, newEnv))
		}
		if v.InConfig(d.old) {
			if v.InConfig(d.key) {
				return nil, nil, fmt.Errorf("%s: %s and %s: %w", file, d.old, d.key, ErrBothSpellings)
			}
			warnings = append(warnings, fmt.Sprintf("%s: %s is deprecated: use %s", file, d.old, d.key))
			renames = append(renames, d.old, d.key)
		}
	}
	if len(renames) == 0 {
		return v, warnings, nil
	}
	fv := viper.New()
	setConfigFile(fv, file)
	if err := fv.ReadInConfig(); err != nil {
		return nil, nil, fmt.Errorf("read config %s: %w", file, err)
	}
	m := fv.AllSettings()
	for i := 0; i < len(renames); i += 2 {
		moveKey(m, renames[i], renames[i+1])
	}
	nv, err := fresh()
	if err != nil {
		return nil, nil, err
	}
	if err := nv.MergeConfigMap(m); err != nil {
		return nil, nil, fmt.Errorf("read config %s: %w", file, err)
	}
	return nv, warnings, nil
}

// moveKey moves the value of the dotted key from to the dotted key to in
// the nested settings m (both in the same section).
func moveKey(m map[string]any, from, to string) {
	fromPath, toPath := strings.Split(from, "."), strings.Split(to, ".")
	section := m
	for _, p := range fromPath[:len(fromPath)-1] {
		next, ok := section[p].(map[string]any)
		if !ok {
			return
		}
		section = next
	}
	val, ok := section[fromPath[len(fromPath)-1]]
	if !ok {
		return
	}
	delete(section, fromPath[len(fromPath)-1])
	section[toPath[len(toPath)-1]] = val
}

// warnDeprecated logs the warnings of loadConfigWarn.
func warnDeprecated(log *slog.Logger, warnings []string) {
	for _, w := range warnings {
		log.Warn("deprecated configuration key: " + w)
	}
}
