package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ciampdp/pdp/pdp/audit"
	"github.com/ciampdp/pdp/pdp/trail"
	"github.com/ciampdp/pdp/pdp/trail/pgtrail"
)

// TrailReadOptions name a trail to read: the PostgreSQL trail at
// PostgresURL, else the files in Dir.
type TrailReadOptions struct {
	Dir            string
	Origin         string
	PostgresURL    string
	PostgresSchema string
}

// TrailReader is a trail opened for the commands that read it, with its
// policy archive.
type TrailReader struct {
	Log     TrailStore
	Archive PolicyArchive
	// TruncatedBytes is the torn final record (never acknowledged) that
	// opening the file trail cut off; 0 when none.
	TruncatedBytes int64
	// Close closes the archive and the log (and releases the directory).
	Close func()
}

// OpenTrailReader opens the trail o names and its policy archive. The
// PostgreSQL trail may be in use; the files are locked (the PDP using
// them must be stopped).
func OpenTrailReader(ctx context.Context, o TrailReadOptions) (*TrailReader, error) {
	if o.PostgresURL != "" {
		// Readers leave the tables' layout to the serving PDPs: an older
		// trail is read as it is, not migrated under older replicas.
		pl, err := pgtrail.Open(ctx, o.PostgresURL, pgtrail.Options{Origin: o.Origin, Schema: o.PostgresSchema, NoMigrate: true})
		if err != nil {
			return nil, err
		}
		ar, err := audit.OpenPostgresArchive(ctx, o.PostgresURL, o.PostgresSchema)
		if err != nil {
			_ = pl.Close()
			return nil, err
		}
		return &TrailReader{Log: pl, Archive: ar, Close: func() { ar.Close(); _ = pl.Close() }}, nil
	}
	l, closeLog, err := openTrailForReading(o.Dir, o.Origin)
	if err != nil {
		return nil, err
	}
	ar, err := audit.OpenDirArchive(filepath.Join(o.Dir, archiveDirName))
	if err != nil {
		closeLog()
		return nil, err
	}
	return &TrailReader{Log: l, Archive: ar, TruncatedBytes: l.Recovery().TruncatedBytes, Close: closeLog}, nil
}

// openTrailForReading opens an existing trail; the FileLog's lock keeps a
// PDP from writing it at the same time (opening repairs a torn tail).
func openTrailForReading(dir, origin string) (*trail.FileLog, func(), error) {
	if _, err := os.Stat(filepath.Join(dir, "records.log")); err != nil {
		return nil, nil, fmt.Errorf("no decision trail in %s: %w", dir, err)
	}
	l, err := trail.OpenFile(dir, trail.FileOptions{Origin: origin})
	if err != nil {
		return nil, nil, err
	}
	return l, func() { _ = l.Close() }, nil
}
