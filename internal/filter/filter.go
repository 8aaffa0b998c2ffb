// Package filter decides which destinations an event goes to: by type (topic), sub-type,
// tenant and a CEL expression over the event. The operator compiles expressions to refuse
// bad ones with the compiler's message; the receiver compiles each once per routing table
// and evaluates it per event.
package filter

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
)

// Event is what a filter sees of an event.
type Event struct {
	Type, SubType, Tenant, Partner, ID string
	// Headers: the partner request's headers, lower-cased names, first values.
	Headers map[string]string
	// Body is the raw JSON body (one object). It is decoded once per event, for the first
	// expression that reads it, and every destination's expression reads that one
	// decoding: event.body is the whole body, event.data its "data" member (the seeds'
	// envelopes: {"id", "type", "data": {...}}), or the whole body when it has none.
	Body []byte
	// Reserve, when set, is asked for the memory a decoding of the body takes before it is
	// made (DecodedBytes); when it refuses, expressions do not match (ErrOverBudget).
	// Reserved is what it granted, for the caller to give back once the event is routed.
	Reserve  func(n int64) bool
	Reserved int64

	activation map[string]any // built by the first expression, shared by the others
	bodyTried  bool           // the body was decoded, or that failed (bodyErr)
	bodyErr    error
}

// DecodeFactor is how many bytes of memory the decoded values of one body byte take at
// most, as measured for the densest JSON (arrays of one-digit numbers: 2 bytes of JSON, a
// 16-byte interface and an 8-byte float each, plus the slice's growth); objects of short
// strings stay under it.
const DecodeFactor = 16

// DecodedBytes is the memory Reserve is asked for to decode a body of n bytes.
func DecodedBytes(n int) int64 { return int64(n) * DecodeFactor }

// ErrOverBudget is a body whose decoding the memory budget did not allow: expressions
// that read it do not match.
var ErrOverBudget = errors.New("the body is larger than the memory budget lets a filter decode now")

// Filter is a destination's filter; the zero value matches every event.
type Filter struct {
	Types, SubTypes, Tenants []string
	Expression               string
}

// Compiled is a filter ready to evaluate.
type Compiled struct {
	types, subTypes, tenants []string
	program                  cel.Program
	headers, body            bool
}

// NeedsBody reports whether the filter's expression may read the body (event.data or
// event.body), the only part that decodes it.
func (c *Compiled) NeedsBody() bool { return c != nil && c.program != nil && c.body }

// NeedsHeaders reports whether the expression reads event.headers, so that callers copy
// them only then.
func (c *Compiled) NeedsHeaders() bool { return c != nil && c.headers }

// MaxCost bounds an expression's evaluation (CEL's cost units), so that no filter can
// make ingest slow: comprehensions over large bodies stop there and do not match.
const MaxCost = 10000

// MaxExpressionLength bounds an expression's source.
const MaxExpressionLength = 4096

var env = mustEnv()

func mustEnv() *cel.Env {
	// JSON numbers are doubles: "event.data.amount > 100" compares a double with an int.
	e, err := cel.NewEnv(cel.Variable("event", cel.MapType(cel.StringType, cel.DynType)), cel.CrossTypeNumericComparisons(true))
	if err != nil {
		panic(err)
	}
	return e
}

// fields are the names an expression may read of event.
var fields = map[string]bool{"type": true, "subType": true, "tenant": true, "partner": true, "id": true, "headers": true, "data": true, "body": true}

// Compile checks f and prepares it. A bad expression's error is the compiler's message.
func Compile(f Filter) (*Compiled, error) {
	c := &Compiled{types: f.Types, subTypes: f.SubTypes, tenants: f.Tenants}
	if strings.TrimSpace(f.Expression) == "" {
		return c, nil
	}
	if len(f.Expression) > MaxExpressionLength {
		return nil, fmt.Errorf("the expression is longer than %d bytes", MaxExpressionLength)
	}
	ast, iss := env.Compile(f.Expression)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if !ast.OutputType().IsExactType(types.BoolType) && ast.OutputType() != types.DynType {
		return nil, fmt.Errorf("the expression must be a bool, not %s", ast.OutputType())
	}
	if err := checkFields(f.Expression); err != nil {
		return nil, err
	}
	prg, err := env.Program(ast, cel.CostLimit(MaxCost), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, err
	}
	c.program = prg
	c.headers = strings.Contains(f.Expression, "headers")
	c.body = strings.Contains(f.Expression, "data") || strings.Contains(f.Expression, "body")
	return c, nil
}

// checkFields refuses event.<name> for names an event does not have, which CEL's map
// type cannot see: a typo would otherwise never match, silently.
func checkFields(expr string) error {
	for i := 0; ; {
		j := strings.Index(expr[i:], "event.")
		if j < 0 {
			return nil
		}
		start := i + j + len("event.")
		if k := i + j; k > 0 && (isIdent(expr[k-1]) || expr[k-1] == '.') {
			i = start
			continue
		}
		end := start
		for end < len(expr) && isIdent(expr[end]) {
			end++
		}
		if name := expr[start:end]; !fields[name] {
			return fmt.Errorf("event has no field %q (it has type, subType, tenant, partner, id, headers, data and body)", name)
		}
		i = end
	}
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// ErrNoMatch is an expression that could not be evaluated (a missing field, a type
// mismatch, the cost limit): the event does not match.
var ErrNoMatch = errors.New("the filter expression could not be evaluated")

// Match reports whether the event passes every part of the filter.
func (c *Compiled) Match(e *Event) (bool, error) {
	if c == nil {
		return true, nil
	}
	if len(c.types) > 0 && !MatchesPattern(c.types, e.Type) {
		return false, nil
	}
	if len(c.subTypes) > 0 && !MatchesPattern(c.subTypes, e.SubType) {
		return false, nil
	}
	if len(c.tenants) > 0 && !slices.Contains(c.tenants, e.Tenant) {
		return false, nil
	}
	if c.program == nil {
		return true, nil
	}
	if err := e.prepare(c.body); err != nil {
		return false, err
	}
	out, _, err := c.program.Eval(map[string]any{"event": e.activation})
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrNoMatch, err)
	}
	b, ok := out.Value().(bool)
	return ok && b, nil
}

// prepare builds the expressions' input once per event; the body is decoded only when
// an expression reads it, and then once for all of them. JSON numbers decode as the
// doubles CEL compares.
func (e *Event) prepare(needsBody bool) error {
	if e.activation == nil {
		headers := make(map[string]any, len(e.Headers))
		for k, v := range e.Headers {
			headers[k] = v
		}
		e.activation = map[string]any{"type": e.Type, "subType": e.SubType, "tenant": e.Tenant, "partner": e.Partner, "id": e.ID,
			"headers": headers, "data": map[string]any{}, "body": map[string]any{}}
	}
	if !needsBody || e.bodyTried {
		if needsBody {
			return e.bodyErr
		}
		return nil
	}
	e.bodyTried = true
	if n := DecodedBytes(len(e.Body)); e.Reserve != nil {
		if !e.Reserve(n) {
			e.bodyErr = ErrOverBudget
			return e.bodyErr
		}
		e.Reserved += n
	}
	var body map[string]any
	if err := json.Unmarshal(e.Body, &body); err != nil || body == nil {
		e.bodyErr = fmt.Errorf("%w: the body is not a JSON object a filter can read: %w", ErrNoMatch, err)
		return e.bodyErr
	}
	e.activation["body"] = body
	e.activation["data"] = body
	if data, ok := body["data"]; ok {
		e.activation["data"] = data
	}
	return nil
}

// MatchesPattern matches exact values and "prefix*" patterns (endpoint eventTypes use
// it too); an empty value matches nothing.
func MatchesPattern(patterns []string, v string) bool {
	if v == "" {
		return false
	}
	for _, p := range patterns {
		if prefix, wild := strings.CutSuffix(p, "*"); wild {
			if strings.HasPrefix(v, prefix) {
				return true
			}
		} else if p == v {
			return true
		}
	}
	return false
}
