// Package deploy proves template.yaml, samconfig.toml, env.json.example and
// the Makefile's Lambda builds without an AWS account: its tests parse the
// template with CloudFormation's short tags, evaluate it for several sets of
// parameters, and compare what it declares with what the Go code does (the
// SDK operations each function's code can call, the settings its loader
// reads, the records the ledger writes to the stream, the handler's
// routes). Package lambdazip beside it writes the functions' zips.
package deploy
