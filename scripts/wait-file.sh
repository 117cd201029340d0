# shellcheck shell=sh
# Sourced by the project's scripts (not run on its own).
# wait_file FILE PID WHO: wait up to 10 s for FILE to be non-empty while PID lives; otherwise
# say so as WHO and exit 1.
wait_file() {
	_wf_i=0
	while [ ! -s "$1" ]; do
		_wf_i=$((_wf_i + 1))
		if [ "$_wf_i" -gt 100 ] || ! kill -0 "$2" 2>/dev/null; then
			echo "$3: $1 did not appear" >&2
			exit 1
		fi
		sleep 0.1
	done
}
