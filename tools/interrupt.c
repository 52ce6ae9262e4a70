// interrupt.c: what a Ctrl-C or SIGTERM loses, said before the process ends.
//
// Outside the training loop (whose own handler finishes the step and saves
// it) an interrupt ends the process as the signal does. Where that happens
// while building the model or loading its data, the user is told what was
// lost (nothing trained, nothing saved, the checkpoint as it was) instead of
// seeing the process vanish. The handler writes the note, puts back the
// disposition it found (the compiler's, which removes its temporary folders,
// or the default) and raises the signal again, so the process still ends by
// the signal (a shell reads 130 or 143) and every earlier handler still runs.
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "tools.h"

static const char *volatile interrupt_text;   // the note, or NULL for silence
static struct sigaction interrupt_previous[2];   // SIGINT's, SIGTERM's
static volatile sig_atomic_t interrupt_installed;

static void on_interrupt(int sig) {
  const char *note = interrupt_text;
  if (note) {
    static const char head[] = "\nsmelt: interrupted ";
    ssize_t w = write(STDERR_FILENO, head, sizeof head - 1);
    w = write(STDERR_FILENO, note, strlen(note));
    w = write(STDERR_FILENO, "\n", 1);
    (void)w;
  }
  sigaction(sig, &interrupt_previous[sig == SIGTERM], NULL);
  interrupt_installed = 0;
  raise(sig);   // pending until this handler returns; then the previous disposition acts
}

void interrupt_note(const char *note) {
  interrupt_text = note;
  if (!note || interrupt_installed) return;
  static const int sigs[2] = {SIGINT, SIGTERM};
  for (int i = 0; i < 2; i++) {
    struct sigaction sa = {.sa_handler = on_interrupt};
    sigemptyset(&sa.sa_mask);
    // a signal the caller ignores (nohup, a background job) stays ignored
    if (sigaction(sigs[i], NULL, &interrupt_previous[i]) == 0 && interrupt_previous[i].sa_handler != SIG_IGN)
      sigaction(sigs[i], &sa, NULL);
  }
  interrupt_installed = 1;
}
