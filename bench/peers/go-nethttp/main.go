// Go net/http plaintext "hello world" peer (standard library only). bench/lib.sh
// starts it with GOMAXPROCS=1 so that one thread runs Go code.
package main

import (
	"log"
	"net/http"
	"os"
)

func main() {
	addr := "127.0.0.1:19005"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	body := []byte("Hello, World!")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	log.Fatal(http.ListenAndServe(addr, nil))
}
