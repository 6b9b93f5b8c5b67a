package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/eventflow/eventflow"
)

// errTooLarge marks a body over the configured limit, answered with 413.
var errTooLarge = errors.New("request body too large")

// errMediaType marks a body that is not JSON, answered with 415.
var errMediaType = errors.New("request body must be application/json")

// decode reads r's JSON body into v. It refuses bodies over maxBytes, bodies
// that are not valid UTF-8 (encoding/json would silently replace the bad
// bytes), unknown fields, and anything after the first JSON value.
func decode(r *http.Request, maxBytes int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return errMediaType
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
	if err != nil {
		return eventflow.Errorf(eventflow.EINVALID, "could not read the request body")
	}
	if int64(len(body)) > maxBytes {
		return errTooLarge
	}
	if !utf8.Valid(body) {
		return eventflow.Errorf(eventflow.EINVALID, "the request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if dec.More() {
		return eventflow.Errorf(eventflow.EINVALID, "the request body holds more than one JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return eventflow.Errorf(eventflow.EINVALID, "the request body holds more than one JSON value")
	}
	return nil
}

// decodeError turns encoding/json's errors into ones a caller can act on.
func decodeError(err error) error {
	var (
		syntax    *json.SyntaxError
		unmarshal *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return eventflow.Errorf(eventflow.EINVALID, "the request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return eventflow.Errorf(eventflow.EINVALID, "the request body is truncated JSON")
	case errors.As(err, &syntax):
		return eventflow.Errorf(eventflow.EINVALID, "malformed JSON at byte %d: %v", syntax.Offset, err)
	case errors.As(err, &unmarshal):
		field := "/" + strings.ReplaceAll(unmarshal.Field, ".", "/")
		if unmarshal.Field == "" {
			return eventflow.Errorf(eventflow.EINVALID, "the request body must be a JSON object")
		}
		return eventflow.FieldError(field, "must be %s, not %s", jsonTypeName(unmarshal.Type.Kind().String()), unmarshal.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return eventflow.FieldError("/"+name, "is not a known field")
	}
	return eventflow.Errorf(eventflow.EINVALID, "invalid JSON: %v", err)
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "int", "int64", "int32", "uint", "uint64":
		return "an integer"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return fmt.Sprintf("a %s", kind)
}

// encode writes v as JSON with the status.
func encode(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
