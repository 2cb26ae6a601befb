package faults

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/flowgate/flowgate/shared/s3store"
)

// S3 wraps an s3store.API. Steps are "s3.<Operation>".
type S3 struct {
	s3store.API
	In *Injector
}

type s3opt = func(*s3.Options)

func (c S3) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...s3opt) (*s3.PutObjectOutput, error) {
	return call(c.In, ctx, "s3.PutObject", func() (*s3.PutObjectOutput, error) { return c.API.PutObject(ctx, in, o...) })
}

func (c S3) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...s3opt) (*s3.GetObjectOutput, error) {
	return call(c.In, ctx, "s3.GetObject", func() (*s3.GetObjectOutput, error) { return c.API.GetObject(ctx, in, o...) })
}

func (c S3) HeadObject(ctx context.Context, in *s3.HeadObjectInput, o ...s3opt) (*s3.HeadObjectOutput, error) {
	return call(c.In, ctx, "s3.HeadObject", func() (*s3.HeadObjectOutput, error) { return c.API.HeadObject(ctx, in, o...) })
}

func (c S3) CopyObject(ctx context.Context, in *s3.CopyObjectInput, o ...s3opt) (*s3.CopyObjectOutput, error) {
	return call(c.In, ctx, "s3.CopyObject", func() (*s3.CopyObjectOutput, error) { return c.API.CopyObject(ctx, in, o...) })
}

func (c S3) DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, o ...s3opt) (*s3.DeleteObjectsOutput, error) {
	return call(c.In, ctx, "s3.DeleteObjects", func() (*s3.DeleteObjectsOutput, error) { return c.API.DeleteObjects(ctx, in, o...) })
}

func (c S3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, o ...s3opt) (*s3.ListObjectsV2Output, error) {
	return call(c.In, ctx, "s3.ListObjectsV2", func() (*s3.ListObjectsV2Output, error) { return c.API.ListObjectsV2(ctx, in, o...) })
}

func (c S3) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, o ...s3opt) (*s3.CreateMultipartUploadOutput, error) {
	return call(c.In, ctx, "s3.CreateMultipartUpload", func() (*s3.CreateMultipartUploadOutput, error) {
		return c.API.CreateMultipartUpload(ctx, in, o...)
	})
}

func (c S3) UploadPart(ctx context.Context, in *s3.UploadPartInput, o ...s3opt) (*s3.UploadPartOutput, error) {
	return call(c.In, ctx, "s3.UploadPart", func() (*s3.UploadPartOutput, error) { return c.API.UploadPart(ctx, in, o...) })
}

func (c S3) UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, o ...s3opt) (*s3.UploadPartCopyOutput, error) {
	return call(c.In, ctx, "s3.UploadPartCopy", func() (*s3.UploadPartCopyOutput, error) { return c.API.UploadPartCopy(ctx, in, o...) })
}

func (c S3) ListParts(ctx context.Context, in *s3.ListPartsInput, o ...s3opt) (*s3.ListPartsOutput, error) {
	return call(c.In, ctx, "s3.ListParts", func() (*s3.ListPartsOutput, error) { return c.API.ListParts(ctx, in, o...) })
}

func (c S3) ListMultipartUploads(ctx context.Context, in *s3.ListMultipartUploadsInput, o ...s3opt) (*s3.ListMultipartUploadsOutput, error) {
	return call(c.In, ctx, "s3.ListMultipartUploads", func() (*s3.ListMultipartUploadsOutput, error) {
		return c.API.ListMultipartUploads(ctx, in, o...)
	})
}

func (c S3) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, o ...s3opt) (*s3.CompleteMultipartUploadOutput, error) {
	return call(c.In, ctx, "s3.CompleteMultipartUpload", func() (*s3.CompleteMultipartUploadOutput, error) {
		return c.API.CompleteMultipartUpload(ctx, in, o...)
	})
}

func (c S3) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, o ...s3opt) (*s3.AbortMultipartUploadOutput, error) {
	return call(c.In, ctx, "s3.AbortMultipartUpload", func() (*s3.AbortMultipartUploadOutput, error) {
		return c.API.AbortMultipartUpload(ctx, in, o...)
	})
}
