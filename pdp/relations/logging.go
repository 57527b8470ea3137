package relations

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"
)

var quietOnce sync.Once

// quietSpiceDB turns SpiceDB's logging down to warnings and sends what is
// left to logger. SpiceDB logs through zerolog's process-wide logger and
// level, so this is done once per process, with the logger of the first
// embedded Store.
func quietSpiceDB(logger *slog.Logger) {
	quietOnce.Do(func() {
		zerolog.SetGlobalLevel(zerolog.WarnLevel)
		zlog.Logger = zerolog.New(zerologToSlog{logger.With("component", "spicedb")}).
			Level(zerolog.WarnLevel).With().Timestamp().Logger()
	})
}

// zerologToSlog receives zerolog's JSON lines and logs them through slog.
type zerologToSlog struct{ log *slog.Logger }

func (w zerologToSlog) Write(p []byte) (int, error) {
	var fields map[string]any
	if err := json.Unmarshal(p, &fields); err != nil {
		w.log.Warn(string(p))
		return len(p), nil
	}
	level := slog.LevelWarn
	switch fields[zerolog.LevelFieldName] {
	case "error", "fatal", "panic":
		level = slog.LevelError
	case "info":
		level = slog.LevelInfo
	case "debug", "trace":
		level = slog.LevelDebug
	}
	msg, _ := fields[zerolog.MessageFieldName].(string)
	delete(fields, zerolog.LevelFieldName)
	delete(fields, zerolog.MessageFieldName)
	delete(fields, zerolog.TimestampFieldName)
	attrs := make([]slog.Attr, 0, len(fields))
	for k, v := range fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	w.log.LogAttrs(context.Background(), level, msg, attrs...)
	return len(p), nil
}
