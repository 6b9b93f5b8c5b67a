package kafka

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kgoLogger sends franz-go's client logs to slog. It stops at warnings:
// franz-go logs every transaction, flush and metadata refresh at info level,
// which would drown the application's own logs.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case k.l.Enabled(ctx, slog.LevelWarn):
		return kgo.LogLevelWarn
	case k.l.Enabled(ctx, slog.LevelError):
		return kgo.LogLevelError
	}
	return kgo.LogLevelNone
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelWarn
	switch level {
	case kgo.LogLevelError:
		lvl = slog.LevelError
	case kgo.LogLevelWarn:
	default:
		return
	}
	k.l.Log(context.Background(), lvl, msg, keyvals...)
}

// kfakeLogger sends the embedded broker's logs to slog at warning level and
// above, for the same reason as kgoLogger.
type kfakeLogger struct{ l *slog.Logger }

func (k kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lvl slog.Level
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
	default:
		return
	}
	ctx := context.Background()
	if k.l.Enabled(ctx, lvl) {
		k.l.Log(ctx, lvl, fmt.Sprintf(format, args...), "component", "kfake")
	}
}
