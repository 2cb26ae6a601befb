package s3store

import (
	"fmt"
	"mime"
	"net/url"
	"strings"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/flowgate/flowgate/shared/upload"
)

// What the finished object carries so that a site can serve it as it is,
// and a consumer can tell what it is without the event.

// DefaultLayout is the finished file's key below the finished prefix: a
// directory per generation of each upload, so that no finished file ever
// replaces another.
const DefaultLayout = "{uploadKey}-{generation}/{name}"

// Layout placeholders.
var layoutFields = []string{"{namespace}", "{uploadKey}", "{generation}", "{name}"}

// CheckLayout validates a finished key layout: relative, made of the
// placeholders and plain characters, with {uploadKey} (which is unique to
// one namespace, identifier and geometry) and {name} in it.
func CheckLayout(layout string) error {
	if !strings.Contains(layout, "{uploadKey}") || !strings.Contains(layout, "{name}") {
		return fmt.Errorf("layout %q must contain {uploadKey} and {name}", layout)
	}
	if strings.HasPrefix(layout, "/") || strings.Contains(layout, "//") || strings.HasSuffix(layout, "/") {
		return fmt.Errorf("layout %q must be a relative key, without empty segments", layout)
	}
	rest := layout
	for _, f := range layoutFields {
		rest = strings.ReplaceAll(rest, f, "")
	}
	for _, r := range rest {
		if !(r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("/!-_.*'()", r))) {
			return fmt.Errorf("layout %q: only placeholders %s and the characters A-Z a-z 0-9 / ! - _ . * ' ( ) are allowed", layout, strings.Join(layoutFields, " "))
		}
	}
	for _, seg := range strings.Split(layout, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("layout %q must not contain . or .. segments", layout)
		}
	}
	return nil
}

// layoutKey fills in a layout for a record. Every value is one safe key
// segment: the namespace and name pass through upload.SafeFileName, the
// upload key and generation are hex.
func layoutKey(layout string, rec upload.Record) string {
	if layout == "" {
		layout = DefaultLayout
	}
	return strings.NewReplacer(
		"{namespace}", upload.SafeFileName(rec.Namespace),
		"{uploadKey}", rec.Key,
		"{generation}", rec.Generation,
		"{name}", upload.SafeFileName(rec.FileName),
	).Replace(layout)
}

// User metadata keys of the finished object (x-amz-meta-*).
const (
	metaUploadKey    = "flowgate-upload-key"
	metaGeneration   = "flowgate-generation"
	metaNamespace    = "flowgate-namespace"
	metaIdentifier   = "flowgate-identifier"
	metaRelativePath = "flowgate-relative-path"
)

// maxMetadataBytes is S3's limit on user metadata, keys and values together.
const maxMetadataBytes = 2048

// objectMetadata is the finished object's user metadata. Values that are
// not plain printable ASCII are written as RFC 2047 encoded words (S3's own
// convention for non-ASCII metadata: mime.WordDecoder reads them). Should
// everything not fit in S3's 2 KB, the relative path goes first, then the
// identifier, then the namespace (the event has them all).
func objectMetadata(rec upload.Record) map[string]string {
	m := map[string]string{
		metaUploadKey:    rec.Key,
		metaGeneration:   rec.Generation,
		metaNamespace:    encodeMeta(rec.Namespace),
		metaIdentifier:   encodeMeta(rec.Identifier),
		metaRelativePath: encodeMeta(rec.RelativePath),
	}
	for _, drop := range []string{metaRelativePath, metaIdentifier, metaNamespace} {
		if metadataBytes(m) <= maxMetadataBytes {
			break
		}
		delete(m, drop)
	}
	return m
}

func metadataBytes(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += len("x-amz-meta-") + len(k) + len(v)
	}
	return n
}

func encodeMeta(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return mime.BEncoding.Encode("UTF-8", s)
		}
	}
	if strings.HasPrefix(s, "=?") {
		// Would read as an encoded word: encode it as one.
		return mime.BEncoding.Encode("UTF-8", s)
	}
	return s
}

// ParseTags reads FLOWGATE_OBJECT_TAGS, "key=value" pairs separated by
// commas, into the x-amz-tagging form (URL query). S3 allows 10 tags per
// object, keys of up to 128 and values of up to 256 characters among
// letters, digits, spaces and + - = . _ : / @.
func ParseTags(s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return "", nil
	}
	v := url.Values{}
	pairs := strings.Split(s, ",")
	if len(pairs) > 10 {
		return "", fmt.Errorf("at most 10 tags, not %d", len(pairs))
	}
	for _, p := range pairs {
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || k == "" || len(k) > 128 || len(val) > 256 || !tagText(k) || !tagText(val) {
			return "", fmt.Errorf("%q is not a tag key=value (keys up to 128 and values up to 256 of letters, digits, spaces and + - = . _ : / @)", p)
		}
		if v.Has(k) {
			return "", fmt.Errorf("tag %q given twice", k)
		}
		v.Set(k, val)
	}
	return v.Encode(), nil
}

func tagText(s string) bool {
	for _, r := range s {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(" +-=._:/@", r)) {
			return false
		}
	}
	return true
}

// objectSettings are what CreateMultipartUpload and CopyObject set on the
// finished object.
type objectSettings struct {
	contentType, disposition string
	metadata                 map[string]string
	tagging                  *string
	storageClass             types.StorageClass
	sse                      types.ServerSideEncryption
	kmsKey                   *string
}

func (s *Store) settings(rec upload.Record) objectSettings {
	o := objectSettings{
		contentType:  upload.ContentType(rec.ContentType),
		disposition:  upload.ContentDisposition(s.Disposition, rec.FileName),
		metadata:     objectMetadata(rec),
		storageClass: s.StorageClass,
	}
	if s.Tags != "" {
		o.tagging = aws.String(s.Tags)
	}
	o.sse, o.kmsKey = s.encryption()
	return o
}

// encryption is the SSE-KMS setting of every object the store writes.
func (s *Store) encryption() (types.ServerSideEncryption, *string) {
	if s.KMSKey == "" {
		return "", nil
	}
	return types.ServerSideEncryptionAwsKms, aws.String(s.KMSKey)
}
