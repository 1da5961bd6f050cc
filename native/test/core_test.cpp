#include <cstdio>
#include "kdfuse_core.h"
int main(){ float s[4]={1,2,3,4}, t[4]={4,3,2,1}, g[4]; kdfuse::DistillLossArgs a; a.student=s;a.teacher=t;a.rows=1;a.cols=4;a.temperature=2;a.grad_student=g; kdfuse::DistillLossResult r; auto st=kdfuse::distill_loss(a,&r); printf("%d %s %g %g %g %g %g\n",(int)st.kind,st.message.c_str(),r.loss,g[0],g[1],g[2],g[3]); }
