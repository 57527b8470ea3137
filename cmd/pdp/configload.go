package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	pdpserver "github.com/ciampdp/pdp/pdp/server"
	"github.com/ciampdp/pdp/pdp/trail"
)

// envPrefix starts every environment variable of the configuration.
const envPrefix = "PDP"

// configFileEnv names the configuration file when --config is not given.
const configFileEnv = "PDP_CONFIG"

// configFlags maps the flags of 'pdp serve' to configuration keys. Every
// key can also be set in the file and the environment; these are the ones
// worth a flag.
var configFlags = []struct {
	flag, key, help string
}{
	{"addr", "http.addr", "address to listen on, host:port"},
	{"dir", "policy.dir", "bundle root: its policies/ and schema/ folders (or the folder itself)"},
	{"reload-interval", "policy.reload_interval", "how often to check the bundle for changes; 0 turns hot reload off"},
	{"git-remote", "policy.git.remote", "follow this Git repository instead of --dir (URL or local path)"},
	{"log-level", "log.level", "debug, info, warn or error"},
	{"log-format", "log.format", "json or text"},
}

// hiddenConfigFlags bind like configFlags but are left out of the help
// and of the README's flag reference (which configFlags must match) until
// that lists them: --trail-dir gives each server the tests start a trail
// folder of its own.
var hiddenConfigFlags = []struct {
	flag, key, help string
}{
	{"trail-dir", "trail.dir", "directory of the decision trail (trail.store file)"},
}

// addConfigFlags adds --config and the configuration flags, with the
// defaults of DefaultConfig.
func addConfigFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "YAML configuration file (default: $"+configFileEnv+", else none)")
	defaults := settings(pdpserver.DefaultConfig())
	for _, f := range configFlags {
		switch d := defaults[f.key].(type) {
		case string:
			fs.String(f.flag, d, f.help)
		case time.Duration:
			fs.Duration(f.flag, d, f.help)
		case bool:
			fs.Bool(f.flag, d, f.help)
		default:
			panic(fmt.Sprintf("flag --%s: unsupported type %T", f.flag, d))
		}
	}
	for _, f := range hiddenConfigFlags {
		fs.String(f.flag, defaults[f.key].(string), f.help)
		_ = fs.MarkHidden(f.flag)
	}
}

// loadConfig resolves the configuration from, lowest precedence first:
// DefaultConfig, the YAML file (--config or $PDP_CONFIG), PDP_* environment
// variables, and the flags given on the command line. Unknown keys in the
// file are an error. It also returns the keys the file set.
func loadConfig(fs *pflag.FlagSet) (pdpserver.Config, *viper.Viper, error) {
	c, v, _, err := loadConfigWarn(fs)
	return c, v, err
}

// newConfigViper is a viper with the defaults and the environment bound.
func newConfigViper() (*viper.Viper, error) {
	v := viper.New()
	for key, def := range settings(pdpserver.DefaultConfig()) {
		v.SetDefault(key, def)
	}
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	return v, bindDeprecatedEnv(v)
}

// setConfigFile points v at file; files without a known extension are YAML.
func setConfigFile(v *viper.Viper, file string) {
	v.SetConfigFile(file)
	if ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(file), ".")); !slices.Contains(viper.SupportedExts, ext) {
		v.SetConfigType("yaml") // pdp.conf and friends are YAML too
	}
}

// loadConfigWarn is loadConfig, also returning a warning for each
// deprecated key the file or the environment uses (deprecatedKeys), for
// the caller to log once its logger exists.
func loadConfigWarn(fs *pflag.FlagSet) (pdpserver.Config, *viper.Viper, []string, error) {
	v, err := newConfigViper()
	if err != nil {
		return pdpserver.Config{}, nil, nil, err
	}
	file, _ := fs.GetString("config")
	if file == "" {
		file = os.Getenv(configFileEnv)
	}
	if file != "" {
		setConfigFile(v, file)
		if err := v.ReadInConfig(); err != nil {
			return pdpserver.Config{}, nil, nil, fmt.Errorf("read config %s: %w", file, err)
		}
	}
	v, warnings, err := renameDeprecated(v, file, newConfigViper)
	if err != nil {
		return pdpserver.Config{}, nil, nil, err
	}
	for _, f := range append(configFlags[:len(configFlags):len(configFlags)], hiddenConfigFlags...) {
		if err := v.BindPFlag(f.key, fs.Lookup(f.flag)); err != nil {
			return pdpserver.Config{}, nil, nil, fmt.Errorf("bind --%s: %w", f.flag, err)
		}
	}
	var c pdpserver.Config
	if err := v.UnmarshalExact(&c, viper.DecodeHook(decodeHook)); err != nil {
		where := "configuration"
		if file != "" {
			where = file
		}
		return pdpserver.Config{}, nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	return c, v, warnings, nil
}

var (
	durationType  = reflect.TypeFor[time.Duration]()
	apiKeysType   = reflect.TypeFor[[]pdpserver.APIKey]()
	stringsType   = reflect.TypeFor[[]string]()
	durationsType = reflect.TypeFor[map[string]time.Duration]()
	redactType    = reflect.TypeFor[[]trail.RedactionRule]()
	listsType     = reflect.TypeFor[map[string][]string]()
)

// decodeHook converts the strings that environment variables and flags
// give (and YAML may give) into durations ("2s") and API key lists
// ("app=digest,app2=digest2").
func decodeHook(from, to reflect.Type, data any) (any, error) {
	s, ok := data.(string)
	if !ok || from.Kind() != reflect.String {
		return data, nil
	}
	switch to {
	case durationType:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("duration %q: want a number with a unit, such as 2s, 500ms or 1m", s)
		}
		return d, nil
	case apiKeysType:
		return pdpserver.ParseAPIKeys(s)
	case stringsType:
		return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }), nil
	case durationsType: // "decision=2160h,search=720h"
		out := map[string]time.Duration{}
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
			k, v, ok := strings.Cut(f, "=")
			d, err := time.ParseDuration(v)
			if !ok || err != nil {
				return nil, fmt.Errorf("%q: want name=duration pairs, such as decision=2160h,search=720h", f)
			}
			out[k] = d
		}
		return out, nil
	case listsType: // "budget-app=budget-app-web,budget-app=budget-app-ios": a repeated name adds a value
		return parseLists(s)
	case redactType: // "request.context.ip=hash,decision.input.entities.*.attrs.email=encrypt"
		var out []trail.RedactionRule
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
			path, method, ok := strings.Cut(f, "=")
			if !ok {
				return nil, fmt.Errorf("%q: want path=method pairs, such as request.context.ip=hash", f)
			}
			out = append(out, trail.RedactionRule{Path: path, Method: method})
		}
		return out, nil
	}
	return data, nil
}

// settings flattens a configuration into its dotted keys, by the
// mapstructure tags of its fields: what the defaults, the documentation and
// the tests enumerate.
func settings(c any) map[string]any {
	out := map[string]any{}
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := range t.NumField() {
			key := t.Field(i).Tag.Get("mapstructure")
			if prefix != "" {
				key = prefix + "." + key
			}
			fv := v.Field(i)
			if fv.Kind() == reflect.Struct {
				walk(key, fv)
				continue
			}
			out[key] = fv.Interface()
		}
	}
	walk("", reflect.ValueOf(c))
	return out
}

// envName is the environment variable of a key.
func envName(key string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// parseLists decodes name=value pairs separated by commas or spaces into a
// map of lists; a name given again adds a value to its list.
func parseLists(s string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%q: want name=value pairs, such as budget-app=budget-app-web,budget-app=budget-app-ios", f)
		}
		out[k] = append(out[k], v)
	}
	return out, nil
}
