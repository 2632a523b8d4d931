package automations

import (
	"fmt"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/interpreter"
)

// Clause is one term of a filter's top-level conjunction (a && b && c), as evaluated on one
// event.
type Clause struct {
	Expr   string `json:"expr"`
	Result string `json:"result"` // true, false, or error: …
}

// explain evaluates each top-level && term of filter on act: the false ones are why the rule
// did not fire. A filter that is no conjunction is one clause.
func explain(filter *program, act interpreter.Activation) ([]Clause, error) {
	native := filter.ast.NativeRep()
	var terms []celast.Expr
	var flatten func(x celast.Expr)
	flatten = func(x celast.Expr) {
		if x.Kind() == celast.CallKind && x.AsCall().FunctionName() == "_&&_" {
			for _, a := range x.AsCall().Args() {
				flatten(a)
			}
			return
		}
		terms = append(terms, x)
	}
	flatten(native.Expr())
	out := make([]Clause, 0, len(terms))
	for _, t := range terms {
		src, err := cel.ExprToString(t, native.SourceInfo())
		if err != nil {
			return nil, fmt.Errorf("print a clause: %w", err)
		}
		c := Clause{Expr: src}
		p, err := compile("filter", src, cel.BoolType)
		if err != nil {
			c.Result = "error: " + err.Error()
		} else if ok, err := p.evalBool(act); err != nil {
			c.Result = "error: " + err.Error()
		} else {
			c.Result = fmt.Sprint(ok)
		}
		out = append(out, c)
	}
	return out, nil
}
