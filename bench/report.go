package main

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"
	"time"
)

// history is what was changed and measured before and after, by hand (it
// is not this run's): appended to the report as it is.
//
//go:embed history.md
var history string

// Report is a run's results.
type Report struct {
	Quick             bool
	Started, Finished time.Time
	Machine           Machine
	Results           []*Result
	Zips              []zipSize
	Cold              *coldStarts
	Memory            *memorySizing
	Checksums         []checksumCost
	Combine           combineCost
	// Direct is the data paths compared on the same files (direct.go).
	Direct []*DirectResult
}

func (rep *Report) byPath(path string) []*Result {
	var out []*Result
	for _, r := range rep.Results {
		if r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// target is one of the targets and how this run did.
type target struct {
	Goal   string
	Result string
	Met    string // "yes", "no", or "not measured"
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// Targets evaluates the targets (issue 15's, and the assembly target of
// the issue before it) on what this run measured. Each is a ratio to a
// ceiling measured in the same run, or a count, or a bound.
func (rep *Report) Targets() []target {
	var out []target
	local, s3r := rep.byPath(pathLocal), rep.byPath(pathS3)
	add := func(goal string, rs []*Result, res func(*Result) (string, bool)) {
		if len(rs) == 0 {
			out = append(out, target{goal, "—", "not measured"})
			return
		}
		var parts []string
		ok := true
		for _, r := range rs {
			p, good := res(r)
			parts = append(parts, r.short()+" "+p)
			ok = ok && good
		}
		out = append(out, target{goal, strings.Join(parts, "; "), yesNo(ok)})
	}
	byShape := func(rs []*Result, chunk int64, sim int) []*Result {
		return filter(rs, func(r *Result) bool {
			return r.Files == 1 && !r.SHA256 && r.ChunkSize == chunk && r.Simultaneous == sim
		})
	}
	small := func(rs []*Result) []*Result {
		return filter(rs, func(r *Result) bool { return r.ChunksPerFile() == 1 && r.Parallel == 8 })
	}
	durable := func(min float64) func(*Result) (string, bool) {
		return func(r *Result) (string, bool) {
			ratio := r.DurableTargetRatio()
			return fmt.Sprintf("%.0f%% (%.0f of %.0f MiB/s)", 100*ratio, r.MiBps, r.DurableTargetCeiling()), ratio >= min
		}
	}
	add("Local, 1 MiB chunks × 3: ingest ≥ 90% of the lower of the HTTP ceiling and the disk with an fdatasync per chunk",
		byShape(local, 1*mib, 3), durable(0.9))
	add("Local, 4 MiB chunks × 8: the same ≥ 95%", byShape(local, 4*mib, 8), durable(0.95))
	add("Local, many 64 KiB files, 8 at once: ingest ≥ 60% of the HTTP ceiling, last chunk → complete p99 ≤ 50 ms",
		small(local), func(r *Result) (string, bool) {
			ratio := r.MiBps / r.HTTPCeil.MiBps
			p99 := percentile(r.ToComplete, 99)
			return fmt.Sprintf("%.0f%%, p99 %s", 100*ratio, ms(p99)), ratio >= 0.6 && p99 <= 50*time.Millisecond
		})
	add("Local: server peak RSS ≤ 64 MiB with 24 requests of 4 MiB in flight, and with 200 one-chunk files of 256 KiB sent at once",
		filter(local, func(r *Result) bool {
			return r.InFlight() >= 24 && r.ChunkSize == 4*mib || r.ChunksPerFile() == 1 && r.Parallel >= 200
		}), func(r *Result) (string, bool) { return mibStr(r.PeakRSS), r.PeakRSS <= 64*mib })
	add("AWS path, 1 MiB chunks × 3: ingest ≥ 85% of the raw MinIO PutObject ceiling", byShape(s3r, 1*mib, 3),
		func(r *Result) (string, bool) { return fmt.Sprintf("%.0f%%", 100*r.Ratio()), r.Ratio() >= 0.85 })
	add("AWS path, many 64 KiB files: ingest ≥ 50% of the PutObject ceiling; a one-chunk file ≤ 3 DynamoDB writes",
		small(s3r), func(r *Result) (string, bool) {
			writes := r.CostPerGiB().DDBWrites * float64(r.Bytes()) / float64(gib) / float64(r.Files)
			return fmt.Sprintf("%.0f%%, %.1f writes per file", 100*r.Ratio(), writes), r.Ratio() >= 0.5 && writes <= 3
		})
	add("AWS path, 4 MiB chunks: ≤ $0.004 per GiB all in (S3, DynamoDB, API Gateway, Lambda)",
		filter(s3r, func(r *Result) bool { return r.ChunkSize == 4*mib && r.ChunksPerFile() > 1 }),
		func(r *Result) (string, bool) { c := r.CostPerGiB().Total; return fmt.Sprintf("$%.4f", c), c <= 0.004 })

	goal := "S3 assembly ≥ 60% of the MinIO copy ceiling, peak RSS ≤ 160 MiB, for a 2 GiB file (issue 6)"
	copies := filter(s3r, func(r *Result) bool { return r.Copy && r.Files == 1 && r.CopyCeil.MiBps > 0 })
	if len(copies) == 0 {
		out = append(out, target{goal, "—", "not measured"})
	} else {
		largest := slices.MaxFunc(copies, func(a, b *Result) int { return int(a.FileSize>>20 - b.FileSize>>20) })
		ratio := largest.AssemblyMiBps / largest.CopyCeil.MiBps
		res := fmt.Sprintf("%s: %.0f%% (%.0f of %.0f MiB/s), peak RSS %s",
			largest.short(), 100*ratio, largest.AssemblyMiBps, largest.CopyCeil.MiBps, mibStr(largest.PeakRSS))
		met := yesNo(ratio >= 0.6 && largest.PeakRSS <= 160*mib)
		if largest.FileSize < 2*gib {
			met += " (file smaller than 2 GiB)"
		}
		out = append(out, target{goal, res, met})
	}
	return out
}

func filter(rs []*Result, keep func(*Result) bool) []*Result {
	var out []*Result
	for _, r := range rs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// short names a scenario compactly: "1 GiB/1 MiB/3", "8×128 MiB/4 MiB/3", "2,000×64 KiB".
func (r *Result) short() string {
	if r.Files == 1 {
		return fmt.Sprintf("%s/%s/%d", size(r.FileSize), size(r.ChunkSize), r.Simultaneous)
	}
	if r.ChunksPerFile() == 1 {
		return fmt.Sprintf("%s×%s", count(r.Files), size(r.FileSize))
	}
	return fmt.Sprintf("%s×%s/%s/%d", count(r.Files), size(r.FileSize), size(r.ChunkSize), r.Simultaneous)
}

// Markdown is the report as docs/benchmarks.md has it.
func (rep *Report) Markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	mode := "full run"
	cmd := "make bench"
	if rep.Quick {
		mode, cmd = "quick run (small sizes)", "make bench-quick"
	}
	p("# Benchmarks")
	p("")
	p("Written by `%s` (`go run ./bench`, see [`bench/`](../bench/)), %s, on %s; it took %s.",
		cmd, mode, rep.Started.UTC().Format("2006-01-02 15:04 MST"), rep.Finished.Sub(rep.Started).Round(time.Second))
	p("Every number is set against a ceiling measured in the same run on the same machine, just before the scenario")
	p("and again just after it (the higher of the two counts): the machine is shared with other work, so absolute")
	p("numbers vary from run to run and the ratios are what to compare.")
	p("")
	p("## Machine")
	p("")
	m := rep.Machine
	p("| | |")
	p("| --- | --- |")
	p("| CPU | %s, %d logical CPUs (nproc) |", m.CPU, m.NProc)
	p("| memory | %.1f GiB |", float64(m.Memory)/float64(gib))
	p("| disk (temporary directories, the servers' data) | %s |", m.Disk)
	p("| OS | %s |", m.Kernel)
	p("| Go | %s |", m.Go)
	if m.AWS != "" {
		p("| AWS stand-ins | %s |", m.AWS)
	}
	if m.PageCacheMiBps > 0 {
		p("| disk write, %s in 4 MiB writes + one fsync | %.0f MiB/s through the page cache, %.0f MiB/s with O_DIRECT |", size(m.PageCacheBytes), m.PageCacheMiBps, m.DirectMiBps)
	}
	p("| load average (1, 5, 15 min) | %s at the start, %s at the end |", m.LoadStart, m.LoadEnd)
	p("")

	if len(rep.Results) > 0 { // (a run of -only direct measures none of them)
		p("## Targets")
		p("")
		if rep.Quick {
			p("A quick run uses small sizes, so these are indications only; the targets are defined on the full run's sizes.")
			p("")
		}
		p("| target | this run | met |")
		p("| --- | --- | --- |")
		for _, t := range rep.Targets() {
			p("| %s | %s | %s |", t.Goal, t.Result, t.Met)
		}
		p("")
	}

	if local := rep.byPath(pathLocal); len(local) > 0 {
		p("## Embedded server (`cmd/flowgate`, directory store, bbolt ledger)")
		p("")
		p("| scenario | ingest MiB/s | HTTP ceiling MiB/s | disk ceiling MiB/s | disk, fsync per chunk MiB/s | ratio to it | ratio to the lower ceiling | chunk p50 / p99 | HTTP ceiling p50 / p99 | server peak RSS | server CPU | last chunk → complete |")
		p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, r := range local {
			p("| %s | %s | %s | %s | %s | %.0f%% | **%.0f%%** (%s) | %s / %s | %s / %s | %s | %.1f s | %s |",
				r.Label(), rate(r.MiBps), rate(r.HTTPCeil.MiBps), rate(r.DiskCeil.MiBps),
				rate(r.DurableCeil.MiBps), 100*r.DurableRatio(), 100*r.Ratio(), r.CeilingName,
				ms(r.Stats.Percentile(50)), ms(r.Stats.Percentile(99)), ms(r.HTTPCeil.P50), ms(r.HTTPCeil.P99),
				mibStr(r.PeakRSS), r.CPU.Seconds(), r.completeStr())
		}
		p("")
	}

	if s3r := rep.byPath(pathS3); len(s3r) > 0 {
		p("## AWS path (S3 chunk store and assembler, DynamoDB ledger) against MinIO and dynalite")
		p("")
		p("| scenario | ingest MiB/s | PutObject ceiling MiB/s | ratio | chunk p50 / p99 | PutObject p50 / p99 | server peak RSS | server CPU | last chunk → complete | assembly MiB/s | copy ceiling MiB/s | ratio |")
		p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, r := range s3r {
			asm, cc, cr := "—", "—", "—"
			if r.AssemblyMiBps > 0 {
				asm = rate(r.AssemblyMiBps)
			}
			if r.CopyCeil.MiBps > 0 {
				cc = rate(r.CopyCeil.MiBps)
				if r.AssemblyMiBps > 0 {
					cr = fmt.Sprintf("**%.0f%%**", 100*r.AssemblyMiBps/r.CopyCeil.MiBps)
				}
			}
			p("| %s | %s | %s | **%.0f%%** | %s / %s | %s / %s | %s | %.1f s | %s | %s | %s | %s |",
				r.Label(), rate(r.MiBps), rate(r.PutCeil.MiBps), 100*r.Ratio(),
				ms(r.Stats.Percentile(50)), ms(r.Stats.Percentile(99)), ms(r.PutCeil.P50), ms(r.PutCeil.P99),
				mibStr(r.PeakRSS), r.CPU.Seconds(), r.completeStr(), asm, cc, cr)
		}
		p("")
		p("### Requests and cost per GiB")
		p("")
		p("| scenario | S3 PUT/COPY/POST/LIST | S3 GET/HEAD | S3 free (DELETE, abort) | DynamoDB writes | WRU | reads | RRU | WRU per chunk | API Gateway requests | Lambda invocations | Lambda GB-s | $ per GiB, all in |")
		p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
		for _, r := range s3r {
			c := r.CostPerGiB()
			p("| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | **%.2f** | %.0f | %.0f | %.1f | **$%.5f** (S3 $%.5f + DynamoDB $%.5f + API Gateway $%.5f + Lambda $%.5f) |",
				r.Label(), c.S3Tier1, c.S3Tier2, c.S3Free, c.DDBWrites, c.WRU, c.DDBReads, c.RRU, r.WRUPerChunk(),
				c.APIRequests, c.LambdaInvocations, c.LambdaGBs, c.Total, c.S3Dollars, c.DDBDollars, c.APIDollars, c.LambdaDollars)
		}
		p("")
		p("Counts are per GiB of files, for the whole life of the uploads: test GETs, chunk POSTs (duplicates included),")
		p("assembly, completion. The cost is")
		p("")
		p("```")
		p("$/GiB = ( S3 PUT/COPY/POST/LIST × $0.005 / 1,000      S3 Standard request prices")
		p("        + S3 GET/HEAD          × $0.0004 / 1,000     (DELETE and abort are free)")
		p("        + WRU                  × $0.625 / 1,000,000  DynamoDB on-demand write request units")
		p("        + RRU                  × $0.125 / 1,000,000  DynamoDB on-demand read request units")
		p("        + API Gateway requests × $3.50 / 1,000,000   REST API")
		p("        + Lambda invocations   × $0.20 / 1,000,000   Lambda requests")
		p("        + Lambda GB-s          × $0.0000133334       Lambda duration, arm64")
		p("        ) / GiB of files")
		p("```")
		p("")
		p("with AWS list prices for %s (%s), not fetched: check them", priceRegion, pricesAsOf)
		p("before relying on the dollars. DeleteObjects (a POST, one per 1,000 chunks) is counted with the PUT class to be")
		p("safe. WRU and RRU are what dynalite reports for each request (`ReturnConsumedCapacity: TOTAL`, DynamoDB's rules:")
		p("one WRU per started KB of the larger of the old and new item, one RRU per started 4 KB of a strongly consistent")
		p("read); a write refused by its condition reports nothing but is billed, so it is counted as one WRU (the")
		p("items written here are under 1 KB). API Gateway requests are the upload function's requests (test GETs, chunk")
		p("POSTs, duplicates and retries included; each is one API request and one invocation). Lambda GB-s are each")
		p("invocation's duration as the server measured it (the handler's time for a request, the stream handler's for an")
		p("assembly batch), rounded up to the millisecond as Lambda bills, times the function's MemorySize in the template")
		p("(upload %d MB, assemble %d MB; see \"Lambda MemorySize\" for how the upload function's was chosen). The durations", uploadMemoryMB, assembleMemoryMB)
		p("are taken on this shared machine against MinIO and dynalite, without API Gateway's base64 envelope; on AWS,")
		p("S3 and DynamoDB answer over the network instead. Not included: storage, data transfer, the re-drive's schedule")
		p("(one invocation every 5 minutes, whatever the traffic).")
		p("")
		p("Operations per chunk (and each one's median round trip from the server), by scenario:")
		p("")
		for _, r := range s3r {
			if r.Counts == nil {
				continue
			}
			var s3ops, ddbops []string
			for _, o := range opsPerChunk(r.Counts, "S3", r.Counts.S3, r.Chunks()) {
				s3ops = append(s3ops, fmt.Sprintf("%s %.3g (%s)", o.Op, o.PerChunk, ms(o.P50)))
			}
			for _, o := range opsPerChunk(r.Counts, "DynamoDB", r.Counts.DynamoDB, r.Chunks()) {
				ddbops = append(ddbops, fmt.Sprintf("%s %.3g (%s)", o.Op, o.PerChunk, ms(o.P50)))
			}
			p("- %s (%s chunks): S3 %s; DynamoDB %s; refused conditional writes %.3g.", r.Label(), count(r.Chunks()),
				strings.Join(s3ops, ", "), strings.Join(ddbops, ", "), float64(r.Counts.ConditionFailed)/float64(r.Chunks()))
		}
		p("")
	}

	directMarkdown(&b, rep.Direct)

	if len(rep.Checksums) > 0 {
		p("## Checksums")
		p("")
		p("What integrity costs. Each chunk's CRC-64/NVME is always computed as it is stored (the embedded server")
		p("keeps it for the file's checksum; on the AWS path the SDK computes it for S3, which checks it and keeps it);")
		p("a client's digest of a chunk, when sent, is checked as the chunk streams; at assembly the chunks' CRCs")
		p("combine into the file's without reading it again. One core of this machine, in the bench process (bytes per")
		p("second of the process's CPU time, so that waiting for a core on the shared machine does not count):")
		p("")
		p("| checksum | GiB/s | CPU per GiB |")
		p("| --- | ---: | ---: |")
		for _, c := range rep.Checksums {
			p("| %s | %.2f | %s |", c.Name, c.GiBps, ms(c.CPUPerGiB))
		}
		p("| combining %s chunk CRCs into the file's (10 GiB of 4 MiB chunks) | | %s per file |", count(rep.Combine.Chunks), ms(rep.Combine.Took))
		p("")
		var pairs []string
		for _, r := range rep.Results {
			if !r.SHA256 {
				continue
			}
			for _, q := range rep.Results {
				if q.Path == r.Path && !q.SHA256 && q.Files == r.Files && q.FileSize == r.FileSize && q.ChunkSize == r.ChunkSize && q.Simultaneous == r.Simultaneous {
					where := "embedded server"
					if r.Path == pathS3 {
						where = "AWS path"
					}
					pairs = append(pairs, fmt.Sprintf("| %s: %s | %s → %s MiB/s (%+.0f%%) | %.1f s → %.1f s (%+.1f s per GiB) |",
						where, r.Label(), rate(q.MiBps), rate(r.MiBps), 100*(r.MiBps/q.MiBps-1),
						q.CPU.Seconds(), r.CPU.Seconds(), (r.CPU-q.CPU).Seconds()/(float64(r.Bytes())/float64(gib))))
				}
			}
		}
		if len(pairs) > 0 {
			p("The same upload without and with a SHA-256 sent for every chunk and checked by the server (throughput")
			p("varies from run to run on a shared machine; the server's CPU time is the steadier measure):")
			p("")
			p("| scenario | ingest | server CPU |")
			p("| --- | ---: | ---: |")
			for _, l := range pairs {
				p("%s", l)
			}
			p("")
		}
	}

	if len(rep.Zips) > 0 || rep.Cold != nil {
		p("## Lambda functions")
		p("")
		if len(rep.Zips) == 0 {
			p("Zip sizes are measured by the full run only (they need a cross-build of every function).")
			p("")
		}
	}
	if len(rep.Zips) > 0 {
		p("Built as SAM builds them: `GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags='-s -w'`, the `bootstrap` zipped (deflate).")
		p("")
		p("| function | bootstrap | zip |")
		p("| --- | ---: | ---: |")
		for _, z := range rep.Zips {
			p("| `functions/%s` | %.1f MiB | %.1f MiB |", z.Function, float64(z.Bootstrap)/float64(mib), float64(z.Zip)/float64(mib))
		}
		p("")
	}
	if c := rep.Cold; c != nil {
		p("Upload function cold start, %d runs, each a new instance: its `bootstrap` (built with the same flags for %s)", c.Runs, c.Arch)
		p("under the AWS Lambda Runtime Interface Emulator (RIE, the runtime API SAM CLI runs in its containers), which starts")
		p("it on the first invocation; the event is a flow.js test GET of an unknown upload, answered 204 after reading the")
		p("ledger on dynalite, then a second one to the same instance:")
		p("")
		p("| | median | min | max |")
		p("| --- | ---: | ---: | ---: |")
		p("| init, RIE's `INIT REPORT`: bootstrap started → first `invocation/next` (configuration, SDK clients) | %s | %s | %s |", ms(median(c.Init)), ms(slices.Min(c.Init)), ms(slices.Max(c.Init)))
		p("| first invocation as the caller sees it: RIE starts the bootstrap, init, the event | %s | %s | %s |", ms(median(c.First)), ms(slices.Min(c.First)), ms(slices.Max(c.First)))
		p("| second invocation of the same instance (warm) | %s | %s | %s |", ms(median(c.Warm)), ms(slices.Min(c.Warm)), ms(slices.Max(c.Warm)))
		p("")
		p("On AWS, Lambda's own part of a cold start (fetching the zip, starting the micro-VM) comes on top, and the first")
		p("DynamoDB request opens a TLS connection that the local dynalite (plain HTTP) does not need.")
		p("")
	}
	if m := rep.Memory; m != nil {
		p("### Lambda MemorySize")
		p("")
		if m.Skipped != "" {
			p("Not measured: %s.", m.Skipped)
			p("")
		} else {
			p("Lambda gives a function CPU in proportion to its memory (%d MB: one vCPU). The upload function's `bootstrap`", oneVCPUMB)
			p("under RIE, its process held to that share of one CPU of this machine by a cgroup CPU quota, at each size; %d", m.Chunks)
			p("chunks of %s, each a test GET then a multipart POST as API Gateway sends it (base64), to MinIO and dynalite;", size(m.Chunk))
			p("warm invocations, as the caller sees them. The cost is the upload function's alone (per GiB of %s chunks: a GET", size(m.Chunk))
			p("and a POST per chunk, each billed by the millisecond at the median):")
			p("")
			p("| MemorySize | CPU | test GET p50 | chunk POST p50 / max | bootstrap peak RSS | Lambda $ per GiB |")
			p("| ---: | ---: | ---: | ---: | ---: | ---: |")
			for _, run := range m.Runs {
				mark := ""
				if run.MemoryMB == m.Chosen {
					mark = " **chosen**"
				}
				p("| %d MB%s | %.2f vCPU | %s | %s / %s | %s | $%.5f |", run.MemoryMB, mark, run.CPUShare, ms(run.Get), ms(run.Post), ms(run.PostMax), mibStr(run.PeakRSS), run.DollarsPerGiB)
			}
			p("")
			p("Chosen: the cheapest size whose median chunk POST is within %.0f%% of the fastest measured. The template has %d MB", 100*(chooseWithin-1), uploadMemoryMB)
			p("(the cost table above prices the upload function at it).")
			p("")
		}
	}

	if !rep.Quick {
		p("%s", strings.TrimSpace(history))
		p("")
	}

	if len(rep.Results) == 0 {
		return b.String()
	}
	p("## How it is measured")
	p("")
	p("- **Client**: `internal/testkit/flowclient`, which behaves like flow.js 2.x: a test GET before each chunk (`testChunks: true`),")
	p("  multipart POSTs, `forceChunkSize: true`, chunks in random order, %.0f%% of chunks sent twice (half of those with", 100*duplicates)
	p("  both copies in flight at once). \"N simultaneous\" is flow.js's `simultaneousUploads` per file; several files")
	p("  \"at once\" are separate clients (tabs, users) each with their own N. Files are generated in memory (a random block")
	p("  rotated per file, so no two chunks are alike) and every finished file is read back and its SHA-256 compared.")
	p("- **Ingest MiB/s**: file bytes (MiB = 2^20 bytes; duplicates not counted) over the time from the first request to")
	p("  the last chunk's response. **Chunk p50 / p99**: latency of every successful chunk POST, as the client saw it.")
	p("- **Ceilings** are each measured just before the scenario and again just after it; the higher counts, so that")
	p("  a slow spell of the shared machine during one measurement does not flatter the ratio.")
	p("- **HTTP ceiling**: the same client, with the same options and seeds (so the same requests, duplicates and test")
	p("  GETs), against a loopback server of its own process that reads each body to the end and drops it.")
	p("- **Disk ceiling**: the same bytes written in order, in writes of the chunk size (4 MiB at least), to one new")
	p("  file on the disk the server's data directory is on, with `O_DIRECT` and **one fsync at the end**: the most")
	p("  favourable way to make them durable on that disk (the server fsyncs every chunk before acknowledging it).")
	p("  `O_DIRECT` because through the page cache the same write is several times slower on this virtual disk")
	p("  (virtio, write-back throttling on), so slow that the server beat it: %s.", rep.Machine.pageCacheNote())
	p("  `sync` runs before each measurement so that earlier write-back does not land in it.")
	p("- **Disk, fsync per chunk** (for the record; the target stays set against the lower of the HTTP and disk")
	p("  ceilings): the I/O the server's store does for each chunk before acknowledging it, without HTTP or the")
	p("  ledger. The chunks, cut as the client cuts them, each written with `O_DIRECT` in one write at its offset in a")
	p("  new file per file, its blocks allocated beforehand as the store reserves them (on the same disk; a tail that")
	p("  does not fill a block through the page cache), followed")
	p("  by an `fdatasync` of that file, with as many chunks in flight as the scenario's client has, taken in file")
	p("  order. Its distance below the disk ceiling is what durability per chunk costs on this disk whatever the")
	p("  server does; **ratio to it**, the server's ingest over it, shows how much of the rest is the server's (HTTP,")
	p("  the ledger, its own writes). With many chunks in flight over several files it can come out above the disk")
	p("  ceiling, which has one write in flight at a time.")
	p("- **PutObject ceiling**: each chunk (same bytes, same sizes) sent with the SDK's `PutObject`, streamed with a CRC-64/NVME")
	p("  trailer as the chunk store sends them, with as many requests in flight as the scenario's client.")
	p("- **Copy ceiling** (assembly): the chunk objects the PutObject ceiling left are read back and streamed into one")
	p("  multipart upload, in parts of the chunk store's default size (16 MiB) with its default concurrency (4), then")
	p("  completed: what assembly must do with chunks under 5 MiB, without the ledger, the checks or the cleanup.")
	p("- **Last chunk → complete**: from the last chunk's response at the client to the moment the server recorded the")
	p("  upload complete (the `completedAt` of its \"Upload Completed\" event, received by webhook; the same clock). For")
	p("  several files, the median and the largest over files. It can be 0 when assembly finished before the last")
	p("  response reached the client. **Assembly MiB/s** is the file size over that time.")
	p("- **Server peak RSS**: `VmHWM` from `/proc/<pid>/status` of the server process, started fresh for each scenario;")
	p("  **server CPU**: its user + system time from `/proc/<pid>/stat`, from start to the last file complete.")
	p("  The embedded server is the `go build` of `./cmd/flowgate`, run with `FLOWGATE_LOG_LEVEL=warn`. The AWS path")
	p("  runs as one process (the benchmark binary in a server role): `awsdeploy` wiring as in the upload function (S3")
	p("  chunk store, DynamoDB ledger, the same HTTP handler) served over plain HTTP without the API Gateway envelope, and")
	p("  the assembler function's stream handler fed directly as each upload becomes ready (dynalite has no streams; on AWS")
	p("  the stream's delivery delay comes on top), up to 8 assemblies at once.")
	p("- S3 and DynamoDB requests are counted by SDK middleware in that process, per HTTP attempt (retries included).")
	return b.String()
}

// rate writes MiB/s: a decimal under 10.
func rate(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// pageCacheNote says what the one-off page-cache measurement found.
func (m Machine) pageCacheNote() string {
	if m.PageCacheMiBps <= 0 {
		return "not measured in this run"
	}
	return fmt.Sprintf("%s written through the page cache with one fsync took %.0f MiB/s in this run, with O_DIRECT %.0f MiB/s",
		size(m.PageCacheBytes), m.PageCacheMiBps, m.DirectMiBps)
}

// completeStr is the last chunk -> complete column: one value, or the median
// and the largest over files.
func (r *Result) completeStr() string {
	if len(r.ToComplete) == 1 {
		return ms(max(r.ToComplete[0], 0))
	}
	return fmt.Sprintf("%s / %s", ms(max(r.CompleteP50(), 0)), ms(max(r.CompleteMax(), 0)))
}
