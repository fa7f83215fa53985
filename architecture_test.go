package agentctx_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// tokenPackages read token bytes: they use the project's strict reader
// (internal/jsonx) only, never encoding/json's lenient, case-insensitive
// decoder (spec README: "Token bytes are decoded by the project's strict
// reader only").
var tokenPackages = []string{"act", "ect", "dag", "ledger", "replay", "internal/jws", "internal/jsonx", "internal/claims", "internal/envelope", "internal/wire"}

// TestArchitecture guards the spec README's rules on memory and decoding:
// no package imports unsafe (a verified result never shares memory with a
// mutable buffer), and no token package decodes with encoding/json.
func TestArchitecture(t *testing.T) {
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		checked++
		jsonName := ""
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p == "unsafe" {
				t.Errorf("%s imports unsafe", path)
			}
			// Only internal/telemetry touches the OpenTelemetry SDK and exporters
			// (the API, trace and attribute, is the seam the packages take).
			if (strings.HasPrefix(p, "go.opentelemetry.io/otel/sdk") || strings.HasPrefix(p, "go.opentelemetry.io/otel/exporters")) &&
				filepath.ToSlash(filepath.Dir(path)) != "internal/telemetry" {
				t.Errorf("%s imports %s: tracing goes through internal/telemetry", path, p)
			}
			if p == "encoding/json" {
				jsonName = "json"
				if imp.Name != nil {
					jsonName = imp.Name.Name
				}
			}
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		token := false
		for _, p := range tokenPackages {
			if dir == p || strings.HasPrefix(dir, p+"/") && !strings.HasPrefix(dir, "ledger/") {
				token = true
			}
		}
		if jsonName == "" || !token {
			return nil
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == jsonName && (sel.Sel.Name == "Unmarshal" || sel.Sel.Name == "NewDecoder") {
				t.Errorf("%s: %s decodes with encoding/json.%s; use internal/jsonx", fset.Position(sel.Pos()), dir, sel.Sel.Name)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 30 {
		t.Fatalf("only %d files checked", checked)
	}
}
