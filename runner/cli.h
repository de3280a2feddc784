/* Sub-commands of the exitprobe command line. */
#ifndef EXITPROBE_CLI_H
#define EXITPROBE_CLI_H

/* `exitprobe run ...`: argv[0] is "run".  Returns the process exit status. */
int cli_run(int argc, char **argv);

#endif
