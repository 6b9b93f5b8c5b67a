package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schema is the JSON Schema of one event type at one version.
type Schema struct {
	Type    string
	Version int
	// Document is the schema as served at its URL.
	Document json.RawMessage

	compiled *jsonschema.Schema
}

// Path is where the schema is served, relative to the public URL:
// /v1/schemas/<type>/v<version>.
func (s *Schema) Path() string { return SchemaPath(s.Type, s.Version) }

// SchemaPath is the HTTP path of a type's schema at a version.
func SchemaPath(eventType string, version int) string {
	return "/v1/schemas/" + eventType + "/v" + strconv.Itoa(version)
}

// Schemas holds every known event schema, keyed by type and version.
type Schemas struct {
	byKey map[string]*Schema
}

var schemaFileName = regexp.MustCompile(`^(.+)\.v([1-9][0-9]*)\.json$`)

// LoadSchemas compiles every file named <type>.v<N>.json at the root of fsys.
func LoadSchemas(fsys fs.FS) (*Schemas, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read schemas: %w", err)
	}
	s := &Schemas{byKey: map[string]*Schema{}}
	for _, e := range entries {
		m := schemaFileName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		if !ValidType(m[1]) {
			return nil, fmt.Errorf("schema %s: type does not follow <domain>.<entity>.<action>", e.Name())
		}
		version, _ := strconv.Atoi(m[2])
		raw, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read schema %s: %w", e.Name(), err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("parse schema %s: %w", e.Name(), err)
		}
		c := jsonschema.NewCompiler()
		// "format" only annotates in draft 2020-12 unless asserted: without
		// this, an order id of "x\r\nBcc: …" would pass as a uuid.
		c.AssertFormat()
		if err := c.AddResource(e.Name(), doc); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", e.Name(), err)
		}
		compiled, err := c.Compile(e.Name())
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", e.Name(), err)
		}
		s.byKey[schemaKey(m[1], version)] = &Schema{Type: m[1], Version: version, Document: raw, compiled: compiled}
	}
	return s, nil
}

func schemaKey(eventType string, version int) string { return eventType + "/v" + strconv.Itoa(version) }

// Get returns the schema of a type at a version.
func (s *Schemas) Get(eventType string, version int) (*Schema, bool) {
	sch, ok := s.byKey[schemaKey(eventType, version)]
	return sch, ok
}

// Latest returns the newest version of a type's schema.
func (s *Schemas) Latest(eventType string) (*Schema, bool) {
	var latest *Schema
	for _, sch := range s.byKey {
		if sch.Type == eventType && (latest == nil || sch.Version > latest.Version) {
			latest = sch
		}
	}
	return latest, latest != nil
}

// List returns every schema, ordered by type and version.
func (s *Schemas) List() []*Schema {
	out := make([]*Schema, 0, len(s.byKey))
	for _, sch := range s.byKey {
		out = append(out, sch)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].Version < out[j].Version
	})
	return out
}

// Validate checks e's envelope and its data against the schema its
// DataSchema names (the last two segments of the URL: <type>/v<N>), which
// must be a schema of e's own type.
func (s *Schemas) Validate(e *Event) error {
	if err := e.Validate(); err != nil {
		return err
	}
	versionPart := path.Base(e.DataSchema)
	typePart := path.Base(strings.TrimSuffix(e.DataSchema, "/"+versionPart))
	version, err := strconv.Atoi(strings.TrimPrefix(versionPart, "v"))
	if err != nil || !strings.HasPrefix(versionPart, "v") || typePart != e.Type {
		return fmt.Errorf("event %s: dataschema %q does not name a version of type %s", e.ID, e.DataSchema, e.Type)
	}
	sch, ok := s.Get(e.Type, version)
	if !ok {
		return fmt.Errorf("event %s: no schema for %s v%d", e.ID, e.Type, version)
	}
	data, err := jsonschema.UnmarshalJSON(bytes.NewReader(e.Data))
	if err != nil {
		return fmt.Errorf("event %s: data: %w", e.ID, err)
	}
	if err := sch.compiled.Validate(data); err != nil {
		return fmt.Errorf("event %s: data does not match %s v%d: %w", e.ID, e.Type, version, err)
	}
	return nil
}
