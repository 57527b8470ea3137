package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ciampdp/pdp/pdp/ingest"
	"github.com/ciampdp/pdp/pdp/internal/strictjson"
)

// The HTTP side of the sidecars' record ingestion (pdp/ingest owns the
// rules and the storing).

// TrailIngestPath receives the decision records sidecars made from their
// caches.
const TrailIngestPath = "/v1/trail/ingest"

// MaxIngestRecords bounds the records of one ingest request.
const MaxIngestRecords = 1000

// maxIngestID bounds a record's decision id.
const maxIngestID = 200

// decodeIngest reads an ingest body strictly:
// {"records":[{"seq":1,"id":"…","time":"<RFC 3339>","body":{…}}, …]}.
// Errors name the record's index.
//
// A body exactly as sidecars write it (no whitespace, members in this
// order, plain ids and times) is read by scanIngest, without reflection;
// anything else, and anything scanIngest's reading would refuse, is read
// by decodeIngestJSON, which says what is wrong. scanIngest accepts only
// what decodeIngestJSON accepts, with the same result (FuzzScanIngest).
func decodeIngest(data []byte) ([]ingest.Record, error) {
	if recs, ok := scanIngest(data); ok {
		return recs, nil
	}
	return decodeIngestJSON(data)
}

// decodeIngestJSON is decodeIngest with encoding/json.
func decodeIngestJSON(data []byte) ([]ingest.Record, error) {
	var top struct {
		Records []json.RawMessage `json:"records"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("%w: %s", errSidecarRequest, strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON object", errSidecarRequest)
	}
	if err := strictjson.CheckNames(data); err != nil {
		return nil, fmt.Errorf("%w: %w", errSidecarRequest, err)
	}
	if top.Records == nil {
		return nil, fmt.Errorf("%w: records is missing (an empty list asks only for acked)", errSidecarRequest)
	}
	if len(top.Records) > MaxIngestRecords {
		return nil, fmt.Errorf("%w: %d records: at most %d per request", errSidecarRequest, len(top.Records), MaxIngestRecords)
	}
	out := make([]ingest.Record, len(top.Records))
	for i, raw := range top.Records {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: records[%d]: %s", errSidecarRequest, i, fmt.Sprintf(format, args...))
		}
		var r struct {
			Seq  *uint64         `json:"seq"`
			ID   string          `json:"id"`
			Time string          `json:"time"`
			Body json.RawMessage `json:"body"`
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&r); err != nil {
			return nil, bad("%s", strings.TrimPrefix(err.Error(), "json: "))
		}
		switch {
		case r.Seq == nil || *r.Seq == 0:
			return nil, bad("seq must be a positive integer")
		case i > 0 && *r.Seq <= out[i-1].Seq:
			return nil, bad("seq %d does not follow %d: seqs must increase strictly", *r.Seq, out[i-1].Seq)
		case r.ID == "" || len(r.ID) > maxIngestID:
			return nil, bad("id must be a decision id of 1 to %d characters", maxIngestID)
		}
		t, err := time.Parse(time.RFC3339Nano, r.Time)
		if err != nil {
			return nil, bad("time %q is not an RFC 3339 time", r.Time)
		}
		if b := bytes.TrimSpace(r.Body); len(b) == 0 || b[0] != '{' {
			return nil, bad("body must be a JSON object")
		}
		out[i] = ingest.Record{Seq: *r.Seq, ID: r.ID, Time: t, Body: r.Body}
	}
	return out, nil
}

// ingestTrail answers POST TrailIngestPath.
func (s *Server) ingestTrail(c echo.Context) error {
	r := c.Request()
	app, err := s.keys.authenticate(r)
	if err != nil {
		return err
	}
	id, err := sidecarID(r)
	if err != nil {
		return err
	}
	if err := checkContentType(r.Header.Get(echo.HeaderContentType)); err != nil {
		return err
	}
	buf, err := s.readBody(r)
	if err != nil {
		return err
	}
	defer putBuffer(buf)
	recs, err := decodeIngest(buf.Bytes())
	if err != nil {
		return err
	}
	res, err := s.ingest.Ingest(r.Context(), app, id, recs)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, res)
}
