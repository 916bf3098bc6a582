suppressMessages(library(surveillance))
cat("surveillance", as.character(packageVersion("surveillance")), "\n")
# Generalized ESD critical values, Rosner (1983): n = 54, alpha = 0.05, i = 1..10
n <- 54; a <- 0.05
for (i in 1:10) { p <- 1 - a/(2*(n-i+1)); t <- qt(p, n-i-1); lam <- (n-i)*t/sqrt((n-i-1+t^2)*(n-i+1)); cat(sprintf("lambda %d %.10f\n", i, lam)) }
# mad
cat(sprintf("mad %.10f median %.10f\n", mad(c(1,2,3,4,100,7,9)), median(c(1,2,3,4,100,7,9))))
# glrnb: fixed mu0 and dispersion
x <- c(4,5,3,6,4,5,9,11,12,4,3,5,14,13,4)
s <- sts(observed = matrix(x, ncol=1))
r <- glrnb(s, control=list(range=1:15, mu0=rep(4.5,15), alpha=0.2, c.ARL=5, M=-1, Mtilde=1, change="intercept", theta=NULL, dir="inc", ret="value"))
cat("glrnb_nb", sprintf("%.10f", upperbound(r)), "\n"); cat("alarm", alarms(r), "\n")
r0 <- glrnb(s, control=list(range=1:15, mu0=rep(4.5,15), alpha=0, c.ARL=5, M=-1, Mtilde=1, change="intercept", theta=NULL, dir="inc", ret="value"))
cat("glrnb_pois", sprintf("%.10f", upperbound(r0)), "\n"); cat("alarm", alarms(r0), "\n")
r2 <- glrnb(s, control=list(range=1:15, mu0=rep(4.5,15), alpha=0.2, c.ARL=5, M=4, Mtilde=1, change="intercept", theta=NULL, dir="inc", ret="value"))
cat("glrnb_nb_M4", sprintf("%.10f", upperbound(r2)), "\n"); cat("alarm", alarms(r2), "\n")
