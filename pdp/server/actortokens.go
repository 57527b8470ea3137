package server

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ciampdp/pdp/pdp/api"
)

// ErrActorTokens: the binding of actor tokens (auth.actor_tokens.clients,
// single_use) is not valid.
var ErrActorTokens = errors.New("invalid auth.actor_tokens binding")

// ActorTokenClients is auth.actor_tokens.clients keyed by the exact
// application names of auth.api_keys (or "local" with authentication
// off): nil when unset. The configuration loader folds map keys to lower
// case, so a key matches an application whatever its case, and two
// applications differing only in case cannot be told apart (an error).
// Every application must be known, list at least one client id, and a
// client id belongs to one application only.
func (a AuthConfig) ActorTokenClients() (map[string][]string, error) {
	if len(a.ActorTokens.Clients) == 0 {
		return nil, nil
	}
	known := map[string][]string{} // lower case → the names
	for _, k := range a.APIKeys {
		l := strings.ToLower(k.Application)
		if !slices.Contains(known[l], k.Application) {
			known[l] = append(known[l], k.Application)
		}
	}
	if len(a.APIKeys) == 0 {
		known[api.LocalApplication] = []string{api.LocalApplication}
	}
	out := make(map[string][]string, len(a.ActorTokens.Clients))
	owner := map[string]string{} // client id → application
	keys := make([]string, 0, len(a.ActorTokens.Clients))
	for k := range a.ActorTokens.Clients {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		names := known[strings.ToLower(k)]
		switch len(names) {
		case 0:
			return nil, fmt.Errorf("auth.actor_tokens.clients: %w: %q is not an application of auth.api_keys", ErrActorTokens, k)
		case 1:
		default:
			return nil, fmt.Errorf("auth.actor_tokens.clients: %w: %q names the applications %s, which differ only in case", ErrActorTokens, k, strings.Join(names, ", "))
		}
		app := names[0]
		if _, dup := out[app]; dup {
			return nil, fmt.Errorf("auth.actor_tokens.clients: %w: application %q is listed twice", ErrActorTokens, app)
		}
		ids := a.ActorTokens.Clients[k]
		if len(ids) == 0 {
			return nil, fmt.Errorf("auth.actor_tokens.clients.%s: %w: list at least one client id (or leave the application out: it then proves no actor)", k, ErrActorTokens)
		}
		for _, id := range ids {
			if strings.TrimSpace(id) == "" {
				return nil, fmt.Errorf("auth.actor_tokens.clients.%s: %w: an empty client id", k, ErrActorTokens)
			}
			if o, taken := owner[id]; taken && o != app {
				return nil, fmt.Errorf("auth.actor_tokens.clients: %w: the client id %q is listed for %s and %s: a client belongs to one application", ErrActorTokens, id, o, app)
			}
			owner[id] = app
		}
		out[app] = slices.Clone(ids)
	}
	return out, nil
}
