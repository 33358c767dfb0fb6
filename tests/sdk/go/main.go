// A usage-event producer written the way a user of the official CloudEvents
// Go SDK writes one: NewClientHTTP + Send. The e2e tests run it against the
// real server in both content modes.
//
//	go-sdk-client URL KEY TENANT ID binary|structured
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: go-sdk-client URL KEY TENANT ID binary|structured")
		os.Exit(2)
	}
	url, key, tenant, id, mode := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]
	c, err := cloudevents.NewClientHTTP(cehttp.WithHeader("Authorization", "Bearer "+key))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	e := cloudevents.NewEvent()
	e.SetID(id)
	e.SetSource("/go-sdk")
	e.SetType("message.sent")
	e.SetTime(time.Now()) // nanoseconds, as RFC3339Nano
	e.SetExtension("tenant", tenant)
	if err := e.SetData(cloudevents.ApplicationJSON, map[string]int{"quantity": 2}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := cloudevents.ContextWithTarget(context.Background(), url)
	if mode == "structured" {
		ctx = cloudevents.WithEncodingStructured(ctx)
	} else {
		ctx = cloudevents.WithEncodingBinary(ctx)
	}
	res := c.Send(ctx, e)
	var status *cehttp.Result
	if cloudevents.ResultAs(res, &status) {
		fmt.Println(status.StatusCode)
		if status.StatusCode >= 200 && status.StatusCode < 300 {
			return
		}
		os.Exit(1)
	}
	fmt.Println(res)
	os.Exit(1)
}
