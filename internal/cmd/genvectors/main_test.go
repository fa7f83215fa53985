package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestGenerated: the vectors under testdata/vectors are exactly what this
// generator writes (every signature is deterministic), so a change to the
// generator or to the checked-in files cannot go unnoticed.
func TestGenerated(t *testing.T) {
	out := t.TempDir()
	generate(out)
	checked := 0
	root := filepath.Join("..", "..", "..", "testdata", "vectors")
	for _, suite := range []string{"ect", "act"} {
		err := filepath.WalkDir(filepath.Join(out, suite), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(out, p)
			want, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got, err := os.ReadFile(filepath.Join(root, rel))
			if err != nil {
				t.Errorf("%s: not checked in (run go run ./internal/cmd/genvectors): %v", rel, err)
				return nil
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from what the generator writes (run go run ./internal/cmd/genvectors)", rel)
			}
			checked++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Nothing checked in that the generator does not write.
		files, _ := filepath.Glob(filepath.Join(root, suite, "*.json"))
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(out, suite, filepath.Base(f))); err != nil {
				t.Errorf("%s is checked in but not generated", f)
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d files compared", checked)
	}
}
