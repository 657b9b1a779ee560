# make install / uninstall: the binary and its manual page.
#   make install PREFIX=/usr/local DESTDIR=   (both honoured, as packagers expect)
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MAN1DIR ?= $(PREFIX)/share/man/man1
INSTALL ?= install

.PHONY: install uninstall

install: $(BUILD)/racefree
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MAN1DIR)
	$(INSTALL) -m 0755 $(BUILD)/racefree $(DESTDIR)$(BINDIR)/racefree
	$(INSTALL) -m 0644 docs/racefree.1 $(DESTDIR)$(MAN1DIR)/racefree.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/racefree $(DESTDIR)$(MAN1DIR)/racefree.1
