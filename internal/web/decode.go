package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// MaxBodyBytes bounds every JSON request body. Delivery requests are a few
// hundred bytes; anything near this size is a mistake or an attack.
const MaxBodyBytes = 64 << 10

// DecodeJSON reads exactly one JSON object from r into dst. It demands a JSON
// Content-Type (415), bounds the body (413), rejects unknown fields, syntax
// and type errors and trailing data (400), naming the field at fault where it
// can. It returns nil on success.
func DecodeJSON(w http.ResponseWriter, r *http.Request, dst any) *Problem {
	if p := requireJSON(r); p != nil {
		return p
	}
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeProblem(err)
	}
	// A second value, or garbage after the object, means the client sent
	// something other than what it thinks it sent.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge()
		}
		return NewProblem(http.StatusBadRequest, CodeMalformedJSON, "Malformed JSON",
			"the body must contain a single JSON object")
	}
	return nil
}

func requireJSON(r *http.Request) *Problem {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return NewProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			"Unsupported media type", "Content-Type must be application/json")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return NewProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType,
			"Unsupported media type", fmt.Sprintf("Content-Type %q is not JSON; use application/json", ct))
	}
	return nil
}

func tooLarge() *Problem {
	return NewProblem(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "Request body too large",
		fmt.Sprintf("the body must not exceed %d bytes", MaxBodyBytes))
}

func decodeProblem(err error) *Problem {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
		maxErr    *http.MaxBytesError
	)
	switch {
	case errors.As(err, &maxErr):
		return tooLarge()
	case errors.As(err, &syntaxErr):
		return NewProblem(http.StatusBadRequest, CodeMalformedJSON, "Malformed JSON",
			fmt.Sprintf("syntax error at byte %d: %v", syntaxErr.Offset, syntaxErr))
	case errors.Is(err, io.EOF):
		return NewProblem(http.StatusBadRequest, CodeMalformedJSON, "Malformed JSON", "the body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return NewProblem(http.StatusBadRequest, CodeMalformedJSON, "Malformed JSON", "the body ends before the JSON value does")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(body)"
		}
		return Validation([]FieldError{{
			Field: field,
			Error: fmt.Sprintf("must be %s, not a JSON %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value),
		}})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json reports unknown fields only as text.
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return Validation([]FieldError{{Field: name, Error: "unknown field"}})
	default:
		// Errors from custom UnmarshalJSON methods (times, enums) land here.
		var fe *FieldDecodeError
		if errors.As(err, &fe) {
			return Validation([]FieldError{{Field: fe.Field, Error: fe.Err.Error()}})
		}
		return NewProblem(http.StatusBadRequest, CodeMalformedJSON, "Malformed JSON", err.Error())
	}
}

// FieldDecodeError lets a custom UnmarshalJSON name the field it rejected.
type FieldDecodeError struct {
	Field string
	Err   error
}

func (e *FieldDecodeError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldDecodeError) Unwrap() error { return e.Err }

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	default:
		return "a number"
	}
}
