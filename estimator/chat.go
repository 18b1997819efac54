package estimator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ChatError says why a chat request cannot be counted, in the terms of the
// request rather than of Go: the line, the field path (messages[2].content)
// and what was expected there.
type ChatError struct {
	Line  int    // 1-based line of the offending value; 0 when unknown
	Field string // JSON path of the value, e.g. messages[2].content; "" for the whole input
	Msg   string // what was expected and what was found
	Err   error  // the cause, if any (a JSON syntax error)
}

func (e *ChatError) Unwrap() error { return e.Err }

// Detail is the error without its line: "messages[2].content: expected ...".
func (e *ChatError) Detail() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func (e *ChatError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Detail())
	}
	return e.Detail()
}

// chatShape is what --chat accepts, for error messages.
const chatShape = `a chat request {"messages": [...]} or a list of messages [{"role": ..., "content": ...}]`

// ChatRequest is what --chat reads from one input.
type ChatRequest struct {
	Model     string // the request's "model"; "" for a bare message list or none given
	ModelLine int    // 1-based line of the "model" value
	Messages  []Message
	Tools     []json.RawMessage
}

// ParseChat reads an OpenAI chat request ({"messages": [...], "tools": [...]})
// or a bare message list ([{"role","content","name"?}]). Content may be a
// string or a list of parts; text parts are joined, image_url parts kept as
// Images, other parts ignored. An input that is not such a request is a
// *ChatError naming the line and field.
func ParseChat(data []byte) ([]Message, []json.RawMessage, error) {
	r, err := ParseChatRequest(data)
	if err != nil {
		return nil, nil, err
	}
	return r.Messages, r.Tools, nil
}

// ParseChatRequest is ParseChat that also returns the request's model.
func ParseChatRequest(data []byte) (*ChatRequest, error) {
	p := &chatParser{data: data}
	root, err := p.parse()
	if err != nil {
		return nil, err
	}
	req := &ChatRequest{}
	var items []*jnode
	prefix := ""
	switch root.kind {
	case jArray:
		items = root.items
	case jObject:
		m := root.get("messages")
		if m == nil {
			return nil, p.errAt(root, "", `no "messages" field; expected `+chatShape)
		}
		if m.kind != jArray {
			return nil, p.errAt(m, "messages", "expected a list of messages, got "+m.what())
		}
		items, prefix = m.items, "messages"
		if t := root.get("tools"); t != nil && t.kind != jNull {
			if t.kind != jArray {
				return nil, p.errAt(t, "tools", "expected a list of tool definitions, got "+t.what())
			}
			for _, it := range t.items {
				req.Tools = append(req.Tools, json.RawMessage(data[it.off:it.end]))
			}
		}
		if mod := root.get("model"); mod != nil && mod.kind != jNull {
			if mod.kind != jString {
				return nil, p.errAt(mod, "model", "expected a model name string, got "+mod.what())
			}
			req.Model, req.ModelLine = mod.str, p.line(mod.off)
		}
	default:
		return nil, p.errAt(root, "", "expected "+chatShape+", got "+root.what())
	}
	req.Messages = make([]Message, 0, len(items))
	for i, it := range items {
		m, err := p.message(it, fmt.Sprintf("%s[%d]", prefix, i))
		if err != nil {
			return nil, err
		}
		req.Messages = append(req.Messages, m)
	}
	return req, nil
}

// ParseMessage decodes one chat message; errors are *ChatError with field
// paths relative to the message (role, content[1].text).
func ParseMessage(raw json.RawMessage) (Message, error) {
	p := &chatParser{data: raw}
	n, err := p.parse()
	if err != nil {
		return Message{}, err
	}
	return p.message(n, "")
}

// ContentText flattens a message content: a string, null, or a list of
// parts whose "text" fields are joined.
func ContentText(raw json.RawMessage) (string, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return "", nil
	}
	p := &chatParser{data: raw}
	n, err := p.parse()
	if err != nil {
		return "", err
	}
	text, _, err := p.content(n, "content")
	return text, err
}

func (p *chatParser) message(n *jnode, path string) (Message, error) {
	if n.kind != jObject {
		return Message{}, p.errAt(n, path, `expected a message object {"role": ..., "content": ...}, got `+n.what())
	}
	var m Message
	role := n.get("role")
	switch {
	case role == nil:
		return m, p.errAt(n, join(path, "role"), `missing; expected a string such as "user"`)
	case role.kind != jString:
		return m, p.errAt(role, join(path, "role"), `expected a string such as "user", got `+role.what())
	case role.str == "":
		return m, p.errAt(role, join(path, "role"), `empty; expected a role such as "user"`)
	}
	m.Role = role.str
	text, images, err := p.content(n.get("content"), join(path, "content"))
	if err != nil {
		return m, err
	}
	m.Images = images
	if m.Name, err = p.optString(n.get("name"), join(path, "name"), "a string"); err != nil {
		return m, err
	}
	// Tool calls an assistant made are billed as their name and arguments.
	if tc := n.get("tool_calls"); tc != nil && tc.kind != jNull {
		tcPath := join(path, "tool_calls")
		if tc.kind != jArray {
			return m, p.errAt(tc, tcPath, "expected a list of tool calls, got "+tc.what())
		}
		for i, call := range tc.items {
			cp := fmt.Sprintf("%s[%d]", tcPath, i)
			if call.kind != jObject {
				return m, p.errAt(call, cp, `expected a tool call {"function": {"name": ..., "arguments": ...}}, got `+call.what())
			}
			fn := call.get("function")
			if fn == nil || fn.kind == jNull {
				continue
			}
			if fn.kind != jObject {
				return m, p.errAt(fn, cp+".function", `expected an object {"name": ..., "arguments": ...}, got `+fn.what())
			}
			name, err := p.optString(fn.get("name"), cp+".function.name", "a string")
			if err != nil {
				return m, err
			}
			args, err := p.optString(fn.get("arguments"), cp+".function.arguments", "a string (the arguments as JSON text)")
			if err != nil {
				return m, err
			}
			text += name + args
		}
	}
	m.Content = text
	return m, nil
}

func (p *chatParser) content(n *jnode, path string) (string, []Image, error) {
	if n == nil || n.kind == jNull {
		return "", nil, nil
	}
	switch n.kind {
	case jString:
		return n.str, nil, nil
	case jArray:
		var b strings.Builder
		var images []Image
		for i, part := range n.items {
			pp := fmt.Sprintf("%s[%d]", path, i)
			if part.kind != jObject {
				return "", nil, p.errAt(part, pp, `expected a content part such as {"type": "text", "text": "..."}, got `+part.what())
			}
			if iu := part.get("image_url"); iu != nil && iu.kind != jNull {
				im, err := p.imagePart(iu, pp+".image_url")
				if err != nil {
					return "", nil, err
				}
				images = append(images, im)
				continue
			}
			t, err := p.optString(part.get("text"), pp+".text", "a string")
			if err != nil {
				return "", nil, err
			}
			b.WriteString(t)
		}
		return b.String(), images, nil
	}
	return "", nil, p.errAt(n, path, "expected a string or a list of content parts, got "+n.what())
}

// imagePart reads {"url": ..., "detail": ...} (or a bare URL string, as
// older requests send it).
func (p *chatParser) imagePart(n *jnode, path string) (Image, error) {
	urlNode, detail := n, ""
	if n.kind == jObject {
		urlNode = n.get("url")
		d, err := p.optString(n.get("detail"), path+".detail", `"low", "high" or "auto"`)
		if err != nil {
			return Image{}, err
		}
		detail = d
		if detail != "" && detail != "auto" && detail != "low" && detail != "high" {
			return Image{}, p.errAt(n.get("detail"), path+".detail", fmt.Sprintf(`expected "low", "high" or "auto", got %q`, detail))
		}
		if urlNode == nil {
			return Image{}, p.errAt(n, path+".url", "missing; expected a data: URL or an http(s) URL")
		}
	}
	if urlNode.kind != jString {
		return Image{}, p.errAt(urlNode, path+".url", "expected a URL string, got "+urlNode.what())
	}
	im, err := parseImageURL(urlNode.str, detail)
	if err != nil {
		return Image{}, p.errAt(urlNode, path+".url", err.Error())
	}
	return im, nil
}

// optString is a string field that may be absent or null.
func (p *chatParser) optString(n *jnode, path, want string) (string, error) {
	if n == nil || n.kind == jNull {
		return "", nil
	}
	if n.kind != jString {
		return "", p.errAt(n, path, "expected "+want+", got "+n.what())
	}
	return n.str, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// ---------------------------------------------------------------- a JSON tree with offsets

type jkind byte

const (
	jNull jkind = iota
	jBool
	jNumber
	jString
	jArray
	jObject
)

// jnode is one JSON value and where it is in the input, so an error can
// name its line.
type jnode struct {
	kind     jkind
	off, end int // data[off:end] is the value's text
	str      string
	keys     []string // object members in order
	vals     []*jnode
	items    []*jnode // array elements
}

// get is the object member key (the last one, as encoding/json decides
// duplicates); nil when absent.
func (n *jnode) get(key string) *jnode {
	for i := len(n.keys) - 1; i >= 0; i-- {
		if n.keys[i] == key {
			return n.vals[i]
		}
	}
	return nil
}

func (n *jnode) what() string {
	switch n.kind {
	case jNull:
		return "null"
	case jBool:
		return "a boolean"
	case jNumber:
		return "a number"
	case jString:
		return "a string"
	case jArray:
		return "a list"
	}
	return "an object"
}

type chatParser struct {
	data []byte
	dec  *json.Decoder
}

// maxDepth bounds nesting as encoding/json does, so a hostile input cannot
// exhaust the stack.
const maxDepth = 10000

func (p *chatParser) parse() (*jnode, error) {
	if len(bytes.TrimSpace(p.data)) == 0 {
		return nil, &ChatError{Msg: "empty; expected " + chatShape}
	}
	p.dec = json.NewDecoder(bytes.NewReader(p.data))
	p.dec.UseNumber()
	root, err := p.value(0)
	if err != nil {
		return nil, err
	}
	next := p.skip(int(p.dec.InputOffset()))
	if _, err := p.dec.Token(); err != io.EOF {
		return nil, &ChatError{Line: p.line(next), Msg: "more after the end of the JSON value; expected one chat request per input"}
	}
	return root, nil
}

// skip moves past the white space and separators before a value.
func (p *chatParser) skip(off int) int {
	for off < len(p.data) {
		switch p.data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
		default:
			return off
		}
	}
	return off
}

func (p *chatParser) value(depth int) (*jnode, error) {
	if depth > maxDepth {
		return nil, &ChatError{Line: p.line(int(p.dec.InputOffset())), Msg: "not valid JSON: nested too deeply"}
	}
	n := &jnode{off: p.skip(int(p.dec.InputOffset()))}
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.syntaxErr(err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			n.kind = jObject
			for p.dec.More() {
				kt, err := p.dec.Token()
				if err != nil {
					return nil, p.syntaxErr(err)
				}
				key, _ := kt.(string)
				v, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.keys, n.vals = append(n.keys, key), append(n.vals, v)
			}
		} else {
			n.kind = jArray
			for p.dec.More() {
				v, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, v)
			}
		}
		if _, err := p.dec.Token(); err != nil { // the closing delimiter
			return nil, p.syntaxErr(err)
		}
	case string:
		n.kind, n.str = jString, t
	case json.Number:
		n.kind = jNumber
	case bool:
		n.kind = jBool
	case nil:
		n.kind = jNull
	}
	n.end = int(p.dec.InputOffset())
	return n, nil
}

func (p *chatParser) syntaxErr(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return &ChatError{Line: p.line(int(se.Offset)), Msg: "not valid JSON: " + se.Error(), Err: se}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &ChatError{Line: p.line(len(p.data)), Msg: "not valid JSON: the input ends before the JSON value does"}
	}
	return &ChatError{Msg: "not valid JSON: " + err.Error()}
}

func (p *chatParser) errAt(n *jnode, field, msg string) error {
	return &ChatError{Line: p.line(n.off), Field: field, Msg: msg}
}

// line is the 1-based line of byte offset off.
func (p *chatParser) line(off int) int {
	if off > len(p.data) {
		off = len(p.data)
	}
	return 1 + bytes.Count(p.data[:off], []byte{'\n'})
}
