package client_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README's "Using latch from Go" program must be the package Example
// (which runs, with its output checked) with the server address spelled
// out, and must show the Example's output.
func TestReadmeGoSnippet(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	ex := regexp.MustCompile(`(?s)\nfunc Example\(\) \{\n(.*?)\n\t// Output:\n(.*?)\n\}\n`).FindSubmatch(src)
	if ex == nil {
		t.Fatal("example_test.go has no func Example() with an Output block")
	}
	doc := regexp.MustCompile("(?s)## Using latch from Go\n.*?```go\n.*?\nfunc main\\(\\) \\{\n(.*?)\n\\}\n```\n.*?It prints[^\n]*\n\n```\n(.*?)\n```").FindSubmatch(readme)
	if doc == nil {
		t.Fatal(`README.md: no "Using latch from Go" section with a func main and its output`)
	}
	want := strings.ReplaceAll(string(ex[1]), "exampleURL", `"http://127.0.0.1:7070"`)
	if string(doc[1]) != want {
		t.Errorf("README.md's Go program differs from func Example in example_test.go:\nREADME:\n%s\nExample:\n%s", doc[1], want)
	}
	output := strings.ReplaceAll(string(ex[2]), "\t// ", "")
	if string(doc[2]) != output {
		t.Errorf("README.md shows output %q, the Example prints %q", doc[2], output)
	}
}
